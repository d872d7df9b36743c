// Command afterlife is the one binary of afterlife: the server (serve), the
// builder agent (builder), and the clients that vendors, maintainers,
// trustees, admins and devices use. Every subcommand's --help says what it
// does and which settings it reads.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "afterlife:", err)
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	switch {
	case errors.Is(err, context.Canceled):
		return 130
	case errs.Is(err, errs.Invalid):
		return 2
	default:
		return 1
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "afterlife",
		Short: "Keep abandoned connected devices alive with open, reproducible firmware",
		Long: `afterlife is the handover when a device's vendor ends its support: vendors deposit
sunset packages in escrow, maintainers submit recipes, a farm of independent builders
rebuilds them bit for bit, and the registry signs and serves the firmware to devices.

Start the embedded server (SQLite and ./data, two local builders) with:
  afterlife serve --demo

Then try a device update against it:
  afterlife device init --registry http://127.0.0.1:8080
  afterlife device update --registry http://127.0.0.1:8080 --id demo:afterlife-cam \
      --current 0 --install-to ./device --accept-community-firmware`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newServeCmd(), newMigrateCmd(), newAdminCmd(),
		newBuilderCmd(), newVendorCmd(), newTrusteeCmd(), newRecipeCmd(), newBuildCmd(), newReleaseCmd(), newDeviceCmd(), newLogCmd(),
	)
	return root
}
