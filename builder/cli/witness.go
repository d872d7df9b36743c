package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/witness"
)

// startWitness makes a standalone builder a witness of the log.
func startWitness(ctx context.Context, c builder.LogWitness, keyFile, name string, every time.Duration, log *slog.Logger) error {
	if every == 0 {
		return nil
	}
	w, err := witness.New(witness.Options{Log: c, KeyFile: keyFile, Name: name, Logger: log.With("part", "witness")})
	if err != nil {
		return err
	}
	log.Info("witnessing the transparency log", "witness_key", w.VerifierKey())
	go func() { _ = w.Run(ctx, every) }()
	return nil
}
