package main

import (
	"github.com/spf13/cobra"

	"github.com/tether-gitops/tether/render"
)

func (a *app) buildCommand() *cobra.Command {
	var src sourceFlags
	cmd := &cobra.Command{
		Use:   "build (DIR | --repo URL [--ref REF] [--path PATH])",
		Short: "Render the manifests at a path as multi-document YAML",
		Long: `Render a folder (a kustomization, or plain YAML files) the way a sync would,
and print the objects as multi-document YAML: the same objects and fields as
'kustomize build' of the same folder. Rendering is sandboxed: nothing outside
the repository (or --root) is read, remote bases, exec and container functions
and Helm charts are refused, and sizes and YAML alias expansion are bounded.`,
		Example: `  tether build examples/webapp/overlays/dev
  tether build --repo https://github.com/org/app.git --ref v1.2.0 --path deploy/prod`,
		Args: cobra.MaximumNArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			in, cleanup, err := src.resolve(cmd.Context(), a, args)
			if err != nil {
				return err
			}
			defer cleanup()
			renderer, err := a.renderer()
			if err != nil {
				return err
			}
			resources, err := renderer(cmd.Context(), render.Request{Revision: in.Revision, Options: render.Options{Root: in.Root, Path: in.Path}})
			if err != nil {
				return err
			}
			out, err := render.YAML(resources)
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(out)
			return err
		}),
	}
	src.register(cmd.Flags())
	return cmd
}
