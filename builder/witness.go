package builder

import "context"

// Every builder is also a witness of the transparency log: it checks that
// each new checkpoint extends the last one it cosigned, and cosigns it
// with a witness key of its own (never its attestation key). The JSON is
// documented in docs/farm-protocol.md and docs/transparency.md.

// WitnessJob is what a witness checks: the newest checkpoint the log
// signed and a consistency proof from the size the witness cosigned last.
type WitnessJob struct {
	LogKey     string   `json:"log_key"`    // the log's note verifier key
	Checkpoint string   `json:"checkpoint"` // C2SP tlog-checkpoint, signed by the log
	Old        int64    `json:"old"`        // the size the proof starts at
	Proof      []string `json:"proof"`      // base64 hashes, old → the checkpoint's size
}

// Cosignature is a witness's C2SP tlog-cosignature of a checkpoint.
type Cosignature struct {
	Size        int64  `json:"size"`         // the checkpoint's size
	VerifierKey string `json:"verifier_key"` // the witness's cosignature/v1 vkey
	Signature   string `json:"signature"`    // the note signature line "— <name> <base64>"
}

// LogWitness is the coordinator's side of witnessing, as a witness sees it.
type LogWitness interface {
	// WitnessJob returns the newest checkpoint with a consistency proof
	// from old (0: none yet).
	WitnessJob(ctx context.Context, old int64) (WitnessJob, error)
	// Cosign hands the coordinator a cosignature.
	Cosign(ctx context.Context, c Cosignature) error
}
