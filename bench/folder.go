package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	ssautil "github.com/fluxcd/pkg/ssa/utils"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// readFolder decodes every .yaml file in dir (not its subfolders), in name
// order, into objects. A file that does not decode is named in the error.
func readFolder(dir string) ([]*unstructured.Unstructured, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		got, err := ssautil.ReadObjects(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// objectRef names one object in a record of what a tool applied.
type objectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

func (r objectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// object is a stub of the object r names, enough to get or delete it.
func (r objectRef) object() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(r.APIVersion)
	u.SetKind(r.Kind)
	u.SetNamespace(r.Namespace)
	u.SetName(r.Name)
	return u
}

func refOf(u *unstructured.Unstructured) objectRef {
	return objectRef{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

// readRecord reads what the previous run applied; a missing file is an
// empty record (the first run).
func readRecord(path string) ([]objectRef, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var refs []objectRef
	if err := json.Unmarshal(data, &refs); err != nil {
		return nil, fmt.Errorf("reading the record %s: %w", path, err)
	}
	return refs, nil
}

// writeRecord records what this run applied, sorted, replacing the file
// atomically.
func writeRecord(path string, objs []*unstructured.Unstructured) error {
	refs := make([]objectRef, 0, len(objs))
	for _, o := range objs {
		refs = append(refs, refOf(o))
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].String() < refs[j].String() })
	data, err := json.Marshal(refs)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// stale are stubs of the objects old records and objs lacks.
func stale(old []objectRef, objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	keep := make(map[objectRef]bool, len(objs))
	for _, o := range objs {
		keep[refOf(o)] = true
	}
	var out []*unstructured.Unstructured
	for _, r := range old {
		if !keep[r] {
			out = append(out, r.object())
		}
	}
	return out
}

// loadRun is what a subcommand starts from: DIR's objects, the record of
// what its previous run applied, and the REST config of $KUBECONFIG.
func loadRun(dir, record string, getenv func(string) string) ([]*unstructured.Unstructured, []objectRef, *rest.Config, error) {
	objs, err := readFolder(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	old, err := readRecord(record)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := kubeconfigREST(getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	return objs, old, cfg, nil
}

// kubeconfigREST loads $KUBECONFIG, as kubectl would with only that set.
func kubeconfigREST(getenv func(string) string) (*rest.Config, error) {
	path := getenv("KUBECONFIG")
	if path == "" {
		return nil, errors.New("KUBECONFIG is not set")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return cfg, nil
}
