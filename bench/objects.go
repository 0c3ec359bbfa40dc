package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// objectSet is the shape of a generated set of objects: one Namespace and,
// in it, Deployments (replicas 0, so kwok has no pods to run), Services and
// ConfigMaps, one YAML file each.
type objectSet struct {
	deployments, services, configMaps int
	// pruned is how many ConfigMaps the prune step removes from the folder
	// (the last ones by name).
	pruned int
}

// defaultSet is the 1,001 objects every tool applies in `make bench`.
func defaultSet() objectSet {
	return objectSet{deployments: 100, services: 100, configMaps: 800, pruned: 500}
}

// largeSet is the 5,000 objects of one sync (BENCH_SCALE=1).
func largeSet() objectSet {
	return objectSet{deployments: 500, services: 500, configMaps: 3999, pruned: 1000}
}

// folderSet is one folder of the many-syncs step (BENCH_SCALE=1): 50
// objects.
func folderSet() objectSet { return objectSet{deployments: 5, services: 5, configMaps: 39} }

// buildSet is the 4,000-document kustomization (BENCH_SCALE=1).
func buildSet() objectSet { return objectSet{deployments: 400, services: 400, configMaps: 3199} }

// total counts the objects, the Namespace included.
func (s objectSet) total() int { return 1 + s.deployments + s.services + s.configMaps }

// describe is "1 Namespace, 100 Deployments (replicas 0), ...".
func (s objectSet) describe() string {
	return fmt.Sprintf("1 Namespace, %s Deployments (replicas 0), %s Services, %s ConfigMaps",
		thousands(s.deployments), thousands(s.services), thousands(s.configMaps))
}

const (
	// partOfLabel marks every generated object, so the bench can count
	// what a tool left in the cluster without counting what others made.
	partOfLabel = "app.kubernetes.io/part-of"
	partOfValue = "tether-bench"
	// changedConfigMap is the ConfigMap the one-change step changes.
	changedConfigMap = "config-000"
	// changedSuffix ends the changed ConfigMap's greeting.
	changedSuffix = "-changed"
)

// files are the set's objects for namespace ns: file name → YAML. Every
// object names its namespace.
func (s objectSet) files(ns string) map[string]string {
	files := map[string]string{"namespace.yaml": namespaceYAML(ns)}
	for i := 0; i < s.deployments; i++ {
		files[fmt.Sprintf("deployment-%03d.yaml", i)] = deploymentYAML(ns, i)
	}
	for i := 0; i < s.services; i++ {
		files[fmt.Sprintf("service-%03d.yaml", i)] = serviceYAML(ns, i)
	}
	for i := 0; i < s.configMaps; i++ {
		files[configMapFile(i)] = configMapYAML(ns, i, "")
	}
	return files
}

// write writes the set's objects for namespace ns into dir, one YAML file
// per object.
func (s objectSet) write(dir, ns string) error {
	return writeFiles(dir, s.files(ns))
}

// writeFiles writes name → content into dir, creating it.
func writeFiles(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Join(dir, name), err)
		}
	}
	return nil
}

// changeOneConfigMap rewrites config-000 in dir with different data.
func changeOneConfigMap(dir, ns string) error {
	path := filepath.Join(dir, configMapFile(0))
	if err := os.WriteFile(path, []byte(configMapYAML(ns, 0, changedSuffix)), 0o644); err != nil {
		return fmt.Errorf("changing %s: %w", path, err)
	}
	return nil
}

// removePruned deletes the files of the set's last `pruned` ConfigMaps.
func (s objectSet) removePruned(dir string) error {
	for i := s.configMaps - s.pruned; i < s.configMaps; i++ {
		if err := os.Remove(filepath.Join(dir, configMapFile(i))); err != nil {
			return fmt.Errorf("removing a ConfigMap from the folder: %w", err)
		}
	}
	return nil
}

func configMapFile(i int) string { return fmt.Sprintf("configmap-%03d.yaml", i) }

func namespaceYAML(ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    %s: %s
`, ns, partOfLabel, partOfValue)
}

func deploymentYAML(ns string, i int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%03[2]d
  namespace: %[1]s
  labels:
    app: app-%03[2]d
    %[3]s: %[4]s
spec:
  replicas: 0
  selector:
    matchLabels:
      app: app-%03[2]d
  template:
    metadata:
      labels:
        app: app-%03[2]d
    spec:
      containers:
        - name: app
          image: registry.example.com/bench/app:1.0.%[2]d
          ports:
            - containerPort: 8080
          env:
            - name: CONFIG
              value: config-%03[2]d
          resources:
            requests:
              cpu: 10m
              memory: 16Mi
`, ns, i, partOfLabel, partOfValue)
}

func serviceYAML(ns string, i int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: app-%03[2]d
  namespace: %[1]s
  labels:
    app: app-%03[2]d
    %[3]s: %[4]s
spec:
  selector:
    app: app-%03[2]d
  ports:
    - name: http
      port: 80
      targetPort: 8080
`, ns, i, partOfLabel, partOfValue)
}

func configMapYAML(ns string, i int, suffix string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: config-%03[2]d
  namespace: %[1]s
  labels:
    %[3]s: %[4]s
data:
  greeting: hello-%03[2]d%[5]s
  settings.yaml: |
    log-level: info
    listen: :8080
    upstream: http://app-%03[2]d.%[1]s.svc:80
    retries: 3
`, ns, i, partOfLabel, partOfValue, suffix)
}
