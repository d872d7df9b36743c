package cli

import (
	"testing"

	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestTheCommandsSpeakTheServersJSON(t *testing.T) {
	t.Run("a submitted recipe's build is read as the server writes it", func(t *testing.T) {
		testenv.SameJSON(t, submission{}, coord.Build{}, false)
	})
}

func TestADepositIsReadAsTheServerWritesIt(t *testing.T) {
	testenv.SameJSON(t, releasedDeposit{}, wire.Deposit{}, false)
}
