package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

func newBlobsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "blobs", Short: "Prepare the blob store serve uses"}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the S3 bucket of --blobs with object lock (safe to run again)",
		Long: `Create the bucket that --blobs names, with object lock (and so versioning), which
serve needs before it starts: retention of sealed blobs (--retention) relies on
it, and S3 gives object lock only to a new bucket. An existing bucket with object
lock is left as it is; one without is refused. It reads the same settings as serve
(flags, AFTERLIFE_* variables, --config), and the S3 credentials from
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. The embedded default's disk store
needs no init.`,
		Example: `  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
  afterlife admin blobs init --blobs 's3://afterlife?endpoint=minio:9000&secure=false'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadServe(cmd.Flags(), os.Getenv)
			if err != nil {
				return err
			}
			if cfg.Blobs == "" {
				return errs.E(errs.Invalid, "blobs init: no --blobs S3 URL given; the embedded disk store needs no init")
			}
			s3cfg, err := s3store.ParseURL(cfg.Blobs)
			if err != nil {
				return err
			}
			b, err := s3store.Init(cmd.Context(), s3cfg)
			if err != nil {
				return err
			}
			if b.Created {
				fmt.Fprintf(cmd.OutOrStdout(), "bucket %s created with object lock\n", b.Name)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "bucket %s exists with object lock\n", b.Name)
			}
			return nil
		},
	}
	config.AddServeFlags(initCmd.Flags())
	cmd.AddCommand(initCmd)
	return cmd
}
