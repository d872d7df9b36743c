package authcli

import (
	"testing"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestTheCommandsReadTheServersJSON(t *testing.T) {
	t.Run("a token is read as the server writes it", func(t *testing.T) { testenv.SameJSON(t, apiToken{}, auth.Token{}, true) })
	t.Run("an organisation is read as the server writes it", func(t *testing.T) { testenv.SameJSON(t, apiOrg{}, auth.Org{}, true) })
}
