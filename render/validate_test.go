package render

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func obj(apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	if apiVersion != "" {
		u.SetAPIVersion(apiVersion)
	}
	if kind != "" {
		u.SetKind(kind)
	}
	if namespace != "" {
		u.SetNamespace(namespace)
	}
	if name != "" {
		u.SetName(name)
	}
	return u
}

func TestObjectProblems(t *testing.T) {
	generate := obj("v1", "Pod", "", "")
	generate.SetGenerateName("web-")
	tests := []struct {
		name string
		u    *unstructured.Unstructured
		want string // substring of the problems, "" for none
	}{
		{name: "valid", u: obj("apps/v1", "Deployment", "shop", "web")},
		{name: "valid cluster-scoped with dots and colons", u: obj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "system:web.reader")},
		{name: "253 characters", u: obj("v1", "ConfigMap", "", strings.Repeat("a", 253))},
		{name: "no apiVersion", u: obj("", "ConfigMap", "", "a"), want: "apiVersion is missing"},
		{name: "bad apiVersion", u: obj("a/b/c", "ConfigMap", "", "a"), want: `apiVersion "a/b/c" is not group/version`},
		{name: "no kind", u: obj("v1", "", "", "a"), want: "kind is missing"},
		{name: "no name", u: obj("v1", "ConfigMap", "", ""), want: "metadata.name is missing"},
		{name: "generateName only", u: generate, want: "generateName is not enough"},
		{name: "254 characters", u: obj("v1", "ConfigMap", "", strings.Repeat("a", 254)), want: "more than 253"},
		{name: "slash", u: obj("v1", "ConfigMap", "", "a/b"), want: "may not contain '/'"},
		{name: "percent", u: obj("v1", "ConfigMap", "", "a%b"), want: "may not contain '%'"},
		{name: "dot dot", u: obj("v1", "ConfigMap", "", ".."), want: `may not be '..'`},
		{name: "namespace with capitals", u: obj("v1", "ConfigMap", "Shop", "a"), want: `metadata.namespace "Shop"`},
		{name: "namespace too long", u: obj("v1", "ConfigMap", strings.Repeat("n", 64), "a"), want: "metadata.namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(objectProblems(tt.u), "; ")
			if tt.want == "" && got != "" {
				t.Errorf("problems %q, want none", got)
			}
			if tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("problems %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		rs   []Resource
		want error
		msg  string
	}{
		{
			name: "distinct",
			rs: []Resource{
				{Object: obj("apps/v1", "Deployment", "a", "web"), Source: "a.yaml"},
				{Object: obj("apps/v1", "Deployment", "b", "web"), Source: "b.yaml"},
				{Object: obj("v1", "Service", "a", "web"), Source: "a.yaml"},
				{Object: obj("example.com/v1", "Deployment", "a", "web"), Source: "c.yaml"},
			},
		},
		{
			name: "same object twice",
			rs: []Resource{
				{Object: obj("apps/v1", "Deployment", "a", "web"), Source: "a.yaml"},
				{Object: obj("apps/v1", "Deployment", "a", "web"), Source: "b.yaml"},
			},
			want: ErrDuplicate,
			msg:  "b.yaml: Deployment/a/web: duplicate object: the same object also comes from a.yaml",
		},
		{
			name: "same object in two versions",
			rs: []Resource{
				{Object: obj("autoscaling/v1", "HorizontalPodAutoscaler", "a", "web"), Source: "v1.yaml"},
				{Object: obj("autoscaling/v2", "HorizontalPodAutoscaler", "a", "web"), Source: "v2.yaml"},
			},
			want: ErrDuplicate,
			msg:  "v2.yaml: HorizontalPodAutoscaler/a/web: duplicate object: the same object also comes from v1.yaml",
		},
		{
			name: "invalid name",
			rs:   []Resource{{Object: obj("v1", "ConfigMap", "", "a/b"), Source: "cm.yaml"}},
			want: ErrInvalid,
			msg:  `cm.yaml: ConfigMap/a/b: invalid object: metadata.name "a/b"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validate(tt.rs)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("validate: %v, want %v with %q", err, tt.want, tt.msg)
			}
		})
	}
}
