package cli

import (
	"testing"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestTryReadsReleasedDepositsAsTheServerWritesThem(t *testing.T) {
	t.Run("a listed deposit", func(t *testing.T) {
		testenv.SameJSON(t, releasedID{}, wire.Deposit{}, false)
	})
	t.Run("a deposit's manifest", func(t *testing.T) {
		testenv.SameJSON(t, releasedManifest{}, wire.Deposit{}, false)
	})
	t.Run("a manifest entry", func(t *testing.T) {
		testenv.SameJSON(t, releasedEntry{}, manifest.Entry{}, false)
	})
}
