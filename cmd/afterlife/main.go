// Command afterlife is the one binary of afterlife: the server (serve), the
// builder agent (builder), and the clients that vendors, maintainers,
// trustees, admins and devices use. Every subcommand's --help says what it
// does and which settings it reads.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	buildercli "github.com/afterlife-oss/afterlife/builder/cli"
	escrowcli "github.com/afterlife-oss/afterlife/escrow/cli"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	recipescli "github.com/afterlife-oss/afterlife/recipes/cli"
	registrycli "github.com/afterlife-oss/afterlife/registry/cli"
	handovercli "github.com/afterlife-oss/afterlife/registry/handover/cli"
	mirrorcli "github.com/afterlife-oss/afterlife/registry/mirror/cli"
	translogcli "github.com/afterlife-oss/afterlife/registry/translog/cli"
)

// version is set at build time with -ldflags "-X main.version=…" (make
// build and make dist do); binaryVersion falls back to the commit Go
// stamps into a plain go build.
var version = "dev"

// binaryVersion is the stamped version, else the commit the binary was
// built from (apicli.Version).
func binaryVersion() string { return apicli.Version(version) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "afterlife:", err)
		os.Exit(apicli.ExitCode(err))
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

Then be a device with the small device client (afterlife device … is the same):
  afterlife-device init --state ./device --registry http://127.0.0.1:8080 \
      --product demo-cam --id demo:afterlife-cam --vendor-key ./data/demo/vendor-key.pub.pem \
      --accept-community-firmware
  afterlife-device update --state ./device
  afterlife-device status --state ./device
On a device, afterlife-device run keeps it updated (docs/devices.md).`,
		Version:       binaryVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// The server's commands are here; every client's lives next to the
	// part it speaks to.
	root.AddCommand(
		newServeCmd(), newMigrateCmd(), newAdminCmd(),
		buildercli.BuilderCommand(binaryVersion()), buildercli.BuildCommand(),
		escrowcli.VendorCommand(registrycli.ProductCommand, vendorHandoverCmd, registrycli.SupportCommand, registrycli.EndingSoonCommand), escrowcli.TrusteeCommand(),
		recipescli.RecipeCommand(buildercli.WaitForVerdict, buildercli.TryCommand), registrycli.ReleaseCommand(),
		newDeviceCmd(), translogcli.Command(), mirrorcli.Command(),
	)
	return root
}

// vendorHandoverCmd is "afterlife vendor handover": escrow's commands on a
// deposit's statement, with the statement format's offline ones.
func vendorHandoverCmd(cf *apicli.Flags) *cobra.Command {
	return escrowcli.HandoverCommand(cf, handovercli.SignCommand(wire.HandoverFile), handovercli.VerifyCommand())
}
