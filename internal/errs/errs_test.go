package errs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestKindsMapToStatusesAndSurviveWrapping(t *testing.T) {
	for _, tc := range []struct {
		kind   Kind
		status int
	}{
		{NotFound, http.StatusNotFound}, {Invalid, http.StatusBadRequest}, {Conflict, http.StatusConflict},
		{Unauthenticated, http.StatusUnauthorized}, {Forbidden, http.StatusForbidden},
		{TooLarge, http.StatusRequestEntityTooLarge}, {Unavailable, http.StatusServiceUnavailable},
		{Internal, http.StatusInternalServerError},
	} {
		t.Run(tc.kind.String()+" is "+http.StatusText(tc.status), func(t *testing.T) {
			err := fmt.Errorf("escrow: seal dep_1: %w", E(tc.kind, "because"))
			if KindOf(err) != tc.kind || KindOf(err).HTTPStatus() != tc.status {
				t.Fatalf("kind %v status %d", KindOf(err), KindOf(err).HTTPStatus())
			}
			if k, ok := ParseKind(tc.kind.String()); !ok || k != tc.kind {
				t.Fatalf("ParseKind(%q) = %v, %v", tc.kind.String(), k, ok)
			}
		})
	}
}

func TestANameThatIsNoKindDoesNotParse(t *testing.T) {
	for _, name := range []string{"", "rate_limited", "method_not_allowed", "kind(9)", "NotFound"} {
		if k, ok := ParseKind(name); ok || k != Internal {
			t.Fatalf("ParseKind(%q) = %v, %v", name, k, ok)
		}
	}
}

func TestInternalDetailsStayOutOfMessages(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.7:5432: password authentication failed")
	if got := Message(fmt.Errorf("db: %w", secret)); got != "internal error" {
		t.Fatalf("an internal error told the caller %q", got)
	}
	if got := Message(Wrap(NotFound, secret, "deposit %s not found", "dep_1")); got != "deposit dep_1 not found" {
		t.Fatalf("message = %q", got)
	}
	if Wrap(Invalid, nil, "x") != nil {
		t.Fatal("wrapping nil must stay nil")
	}
}
