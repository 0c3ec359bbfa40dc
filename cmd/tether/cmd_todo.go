package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// notYet is the body of a command whose issue has not landed.
func notYet(name string) func(*cobra.Command, []string) error {
	return action(func(*cobra.Command, []string) error {
		return fmt.Errorf("'tether %s' is not implemented yet", name)
	})
}

func (a *app) runCommand() *cobra.Command {
	return &cobra.Command{Use: "run", Short: "Run the agent: follow the configured syncs until stopped", RunE: notYet("run")}
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{Use: "status", Short: "Show the state of every sync the agent runs", RunE: notYet("status")}
}

func (a *app) whyCommand() *cobra.Command {
	return &cobra.Command{Use: "why KIND/NAMESPACE/NAME", Short: "Tell which sync owns an object, from which revision and file", RunE: notYet("why")}
}
