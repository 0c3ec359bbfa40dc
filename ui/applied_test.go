package ui

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// liveDeployment is a Deployment as the API server returns it: tether
// applied the image, the env var and the port; kubectl scaled it; the
// controller wrote status.
const liveDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web, tether.dev/sync: shop, added-by-hand: "yes"}
  finalizers: [example.com/keep, example.com/other]
  managedFields:
  - manager: tether
    operation: Apply
    apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels: {f:app: {}, f:tether.dev/sync: {}}
        f:finalizers: {v:"example.com/keep": {}}
      f:spec:
        f:template:
          f:spec:
            f:containers:
              k:{"name":"web"}:
                .: {}
                f:image: {}
                f:name: {}
                f:env:
                  k:{"name":"GREETING"}: {.: {}, f:name: {}, f:value: {}}
                f:ports:
                  k:{"containerPort":8080,"protocol":"TCP"}: {.: {}, f:containerPort: {}}
  - manager: kubectl
    operation: Update
    apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:spec: {f:replicas: {}}
  - manager: tether
    operation: Update
    subresource: status
    apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:status: {f:replicas: {}}
spec:
  replicas: 5
  template:
    spec:
      containers:
      - name: sidecar
        image: envoy:1
      - name: web
        image: web:1.2.0
        imagePullPolicy: IfNotPresent
        env:
        - {name: OTHER, value: x}
        - {name: GREETING, value: hello}
        ports:
        - {containerPort: 9090, protocol: TCP}
        - {containerPort: 8080, protocol: TCP}
status:
  replicas: 5
`

const wantApplied = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web, tether.dev/sync: shop}
  finalizers: [example.com/keep]
spec:
  template:
    spec:
      containers:
      - name: web
        image: web:1.2.0
        env:
        - {name: GREETING, value: hello}
        ports:
        - {containerPort: 8080}
`

func TestAppliedView(t *testing.T) {
	for _, tc := range []struct {
		name, live, want string
	}{
		{"fields, keyed list items, set items; other managers and subresources left out", liveDeployment, wantApplied},
		{"no tether entry", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: y}\ndata: {a: b}\n", ""},
		{
			"an entry with only the object's identity",
			"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  managedFields:\n  - {manager: tether, operation: Apply, fieldsType: FieldsV1, fieldsV1: {}}\n",
			"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := decodeYAML(t, tc.live)
			got, err := appliedView(obj)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if got != nil {
					t.Fatalf("got %v, want nil", got)
				}
				return
			}
			if g, w := canonical(t, got), canonical(t, decodeYAML(t, tc.want).Object); g != w {
				t.Errorf("applied view\n got: %s\nwant: %s", g, w)
			}
		})
	}
}

func TestAppliedViewBadFieldSet(t *testing.T) {
	obj := decodeYAML(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: y}\n")
	obj.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "tether", Operation: metav1.ManagedFieldsOperationApply, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{"k:{not json":{}}}`)}}})
	if _, err := appliedView(obj); err == nil {
		t.Fatal("a broken field set was read")
	}
}

func decodeYAML(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(s), &obj); err != nil {
		t.Fatal(err)
	}
	// Through JSON, so numbers are int64 or float64 as from the API server.
	data, _ := json.Marshal(obj)
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return u
}

func canonical(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestMaskSecret(t *testing.T) {
	secret := schema.GroupKind{Kind: "Secret"}
	for _, tc := range []struct {
		name string
		gk   schema.GroupKind
		in   string
		want string
	}{
		{"data and stringData", secret,
			"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: c2VjcmV0, b: eHl6}\nstringData: {c: plain}\ntype: Opaque\n",
			"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: (masked), b: (masked)}\nstringData: {c: (masked)}\ntype: Opaque\n"},
		{"every annotation but tether's provenance", secret,
			"apiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: {kubectl.kubernetes.io/last-applied-configuration: '{\"data\":{\"a\":\"c2VjcmV0\"}}', team: shop, tether.dev/source: app/secret.yaml, tether.dev/revision: main@sha1:1234, config.k8s.io/owning-inventory: tether-inventory-shop, tether.dev/other: x}}\n",
			"apiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: {kubectl.kubernetes.io/last-applied-configuration: (masked), team: (masked), tether.dev/source: app/secret.yaml, tether.dev/revision: main@sha1:1234, config.k8s.io/owning-inventory: tether-inventory-shop, tether.dev/other: (masked)}}\n"},
		{"annotations that are not a mapping", secret,
			"apiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: c2VjcmV0}\n",
			"apiVersion: v1\nkind: Secret\nmetadata: {name: s, annotations: (masked)}\n"},
		{"annotations of other kinds unchanged", schema.GroupKind{Kind: "ConfigMap"},
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s, annotations: {team: shop}}\n",
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s, annotations: {team: shop}}\n"},
		{"data that is not a mapping", secret,
			"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: c2VjcmV0\n",
			"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: (masked)\n"},
		{"the kind comes from the caller, not the object", secret,
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {a: secret}\n",
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {a: (masked)}\n"},
		{"other kinds unchanged", schema.GroupKind{Kind: "ConfigMap"},
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {a: b}\n",
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {a: b}\n"},
		{"a Secret kind of another group is not the core Secret", schema.GroupKind{Group: "example.com", Kind: "Secret"},
			"apiVersion: example.com/v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: b}\n",
			"apiVersion: example.com/v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: b}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := decodeYAML(t, tc.in).Object
			before := canonical(t, in)
			got := maskSecret(tc.gk, in)
			if g, w := canonical(t, got), canonical(t, decodeYAML(t, tc.want).Object); g != w {
				t.Errorf("\n got: %s\nwant: %s", g, w)
			}
			if canonical(t, in) != before {
				t.Error("the input was modified")
			}
		})
	}
	if maskSecret(secret, nil) != nil {
		t.Error("nil in, not nil out")
	}
}
