package keyring

import (
	"context"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	escrowKey  = Key{Name: "escrow identity", File: "escrow.age", Fingerprint: Fingerprint([]byte("age1first"))}
	receiptKey = Key{Name: "receipt key", File: "receipt.key", Fingerprint: Fingerprint([]byte("receipt"))}
)

func TestTheFirstRecordingWinsAndLaterOnesChangeNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		r, err := Open(ctx, d, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := r.Recorded(ctx); err != nil || len(got) != 0 {
			t.Fatalf("a new database records %v, %v", got, err)
		}
		got, err := r.Record(ctx, []Key{escrowKey, receiptKey})
		if err != nil || got["escrow identity"] != escrowKey || got["receipt key"] != receiptKey {
			t.Fatalf("first record = %v, %v", got, err)
		}
		other := escrowKey
		other.Fingerprint = Fingerprint([]byte("age1second"))
		got, err = r.Record(ctx, []Key{other, receiptKey})
		if err != nil || got["escrow identity"] != escrowKey {
			t.Fatalf("a second record replaced the first: %v, %v", got, err)
		}
		if err := Check(got, []Key{other, receiptKey}, "/keys"); !errs.Is(err, errs.Invalid) {
			t.Fatalf("check of the second replica's keys = %v, want Invalid", err)
		}
	})
}

func TestCheck(t *testing.T) {
	recorded := map[string]Key{escrowKey.Name: escrowKey, receiptKey.Name: receiptKey}
	for _, tc := range []struct {
		name   string
		held   []Key
		saying []string // "" means accepted
	}{
		{"the same keys are accepted", []Key{escrowKey, receiptKey}, nil},
		{"a key the database never recorded is accepted", []Key{escrowKey, receiptKey, {Name: "new key", File: "new.key", Fingerprint: "sha256:00"}}, nil},
		{"a missing key is named with where it was expected",
			[]Key{{Name: "escrow identity", File: "escrow.age"}, receiptKey},
			[]string{"escrow identity is missing: expected /keys/escrow.age", escrowKey.Fingerprint}},
		{"a different key is named with both fingerprints",
			[]Key{escrowKey, {Name: "receipt key", File: "receipt.key", Fingerprint: "sha256:ff"}},
			[]string{"receipt key in /keys/receipt.key is not the key", "sha256:ff", receiptKey.Fingerprint}},
		{"every bad key is named at once",
			[]Key{{Name: "escrow identity", File: "escrow.age"}, {Name: "receipt key", File: "receipt.key", Fingerprint: "sha256:ff"}},
			[]string{"escrow identity is missing", "receipt key in /keys/receipt.key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(recorded, tc.held, "/keys")
			if tc.saying == nil {
				if err != nil {
					t.Fatalf("check = %v, want accepted", err)
				}
				return
			}
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("check = %v, want Invalid", err)
			}
			for _, s := range tc.saying {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("%v does not say %q", err, s)
				}
			}
		})
	}
}
