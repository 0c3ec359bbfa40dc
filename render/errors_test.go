package render

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestError(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
		is   error
	}{
		{
			err:  refusal("overlays/prod/kustomization.yaml", `resources[2] "https://github.com/x/y"`, ErrRemote, ""),
			want: `overlays/prod/kustomization.yaml: resources[2] "https://github.com/x/y": remote resources are not allowed`,
			is:   ErrRemote,
		},
		{
			err:  refusal("big.yaml", "", ErrTooLarge, "9 bytes"),
			want: "big.yaml: size limit exceeded: 9 bytes",
			is:   ErrTooLarge,
		},
		{
			err:  &Error{Reason: "something", Err: fs.ErrNotExist},
			want: "something",
			is:   fs.ErrNotExist,
		},
		{
			err:  &Error{File: "a.yaml", Err: fs.ErrNotExist},
			want: "a.yaml: " + fs.ErrNotExist.Error(),
			is:   fs.ErrNotExist,
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		wrapped := fmt.Errorf("sync: build: %w", tt.err)
		var e *Error
		if !errors.As(wrapped, &e) || e != tt.err {
			t.Errorf("errors.As does not find %v", tt.err)
		}
		if !errors.Is(wrapped, tt.is) {
			t.Errorf("%v is not %v", tt.err, tt.is)
		}
	}
}
