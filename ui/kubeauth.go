package ui

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tether-gitops/tether/inventory"
)

// KubeReviewer checks tokens with the API server's TokenReview and access
// with SubjectAccessReview. Its ServiceAccount needs create on
// tokenreviews and subjectaccessreviews (manifests/rbac.yaml: tether-ui).
type KubeReviewer struct {
	Client kubernetes.Interface
}

// Authenticate sends the token to TokenReview.
func (k KubeReviewer) Authenticate(ctx context.Context, token string) (User, error) {
	tr, err := k.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return User{}, fmt.Errorf("asking the API server to review a token (TokenReview): %w", err)
	}
	if !tr.Status.Authenticated {
		return User{}, ErrInvalidToken
	}
	u := tr.Status.User
	extra := map[string][]string{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	return User{Name: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}, nil
}

// CanRead asks SubjectAccessReview whether the user may get the sync's
// inventory ConfigMap: whoever may read that record may see the sync.
func (k KubeReviewer) CanRead(ctx context.Context, u User, invNamespace, sync string) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	sar, err := k.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   u.Name,
			UID:    u.UID,
			Groups: u.Groups,
			Extra:  extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: invNamespace,
				Verb:      "get",
				Version:   "v1",
				Resource:  "configmaps",
				Name:      inventory.ConfigMapName(sync),
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("asking the API server whether %s may read sync %s (SubjectAccessReview): %w", u.Name, sync, err)
	}
	return sar.Status.Allowed, nil
}
