package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// The object set every tool applies: one Namespace and, in it, Deployments
// (replicas 0, so kwok has no pods to run), Services and ConfigMaps.
const (
	deployments = 100
	services    = 100
	configMaps  = 800
	// totalObjects counts the Namespace too.
	totalObjects = 1 + deployments + services + configMaps
	// pruned is how many ConfigMaps step 4 removes from the folder.
	pruned = 500
	// partOfLabel marks every generated object, so the bench can count
	// what a tool left in the cluster without counting what others made.
	partOfLabel = "app.kubernetes.io/part-of"
	partOfValue = "tether-bench"
	// changedConfigMap is the ConfigMap step 3 changes.
	changedConfigMap = "config-000"
)

// writeObjects writes the object set for namespace ns into dir, one YAML
// file per object, every object with an explicit namespace.
func writeObjects(dir, ns string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	files := map[string]string{"namespace.yaml": namespaceYAML(ns)}
	for i := 0; i < deployments; i++ {
		files[fmt.Sprintf("deployment-%03d.yaml", i)] = deploymentYAML(ns, i)
	}
	for i := 0; i < services; i++ {
		files[fmt.Sprintf("service-%03d.yaml", i)] = serviceYAML(ns, i)
	}
	for i := 0; i < configMaps; i++ {
		files[configMapFile(i)] = configMapYAML(ns, i, "")
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// changeOneConfigMap rewrites config-000 with different data.
func changeOneConfigMap(dir, ns string) error {
	path := filepath.Join(dir, configMapFile(0))
	if err := os.WriteFile(path, []byte(configMapYAML(ns, 0, "-changed")), 0o644); err != nil {
		return fmt.Errorf("changing %s: %w", path, err)
	}
	return nil
}

// removeConfigMaps deletes the files of the last `pruned` ConfigMaps.
func removeConfigMaps(dir string) error {
	for i := configMaps - pruned; i < configMaps; i++ {
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
