package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/afterlife-oss/afterlife/registry/device"
)

// deviceFlags are the settings of every device subcommand.
type deviceFlags struct {
	registry, state, id, product, channel, installTo string
	acceptCommunity, verbose, force, fromMetadata    bool
}

func defaultDeviceState() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "afterlife", "device")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "afterlife", "device")
	}
	return ".afterlife-device"
}

func (f *deviceFlags) config(cmd *cobra.Command) device.Config {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	return device.Config{
		Registry: f.registry, StateDir: f.state, InstallDir: f.installTo,
		DeviceID: f.id, Product: f.product, Channel: f.channel, AcceptCommunity: f.acceptCommunity,
		ReplaceRoot: f.force, FromMetadata: f.fromMetadata,
		Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})),
	}
}

func newDeviceCmd() *cobra.Command {
	f := &deviceFlags{}
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Act as a device: trust a registry, check for, install and roll back firmware",
		Long: `Act as a device (or its owner): pin a registry's TUF root, ask for updates, download
with resume, verify against the signed TUF metadata, install into the inactive slot of
an A/B layout (DIR/a, DIR/b, DIR/current), report the outcome, and roll back.

The same logic is an importable Go package for device integrators:
github.com/afterlife-oss/afterlife/registry/device.`,
	}
	cmd.PersistentFlags().StringVar(&f.registry, "registry", envOr("AFTERLIFE_REGISTRY", "http://127.0.0.1:8080"), "registry URL (env AFTERLIFE_REGISTRY)")
	cmd.PersistentFlags().StringVar(&f.state, "state", defaultDeviceState(), "where the device keeps its trusted root, metadata cache and config")
	cmd.PersistentFlags().BoolVarP(&f.verbose, "verbose", "v", false, "say what happens step by step")

	var rootFile string
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Pin the registry's TUF root and store the device's settings",
		Long: `Store the trusted TUF root and the device's settings (id, product, channel, opt-in)
and make a random install id. The device id names the model, shared by a whole fleet; the
install id names this one device: downloads carry it and the registry answers with a receipt
that the install report sends back, so only installs that really downloaded a release count.

With --root the given root.json is trusted (ship it with the device). Without it the
registry's first root is fetched and trusted on first use: whoever answers that request
decides what this device trusts, so do it over a network you trust.

Run again with the same root, init only updates the settings. A different root is
refused while one is pinned: replacing it forgets the metadata versions verified under
it, which protect the device against rollback. --force replaces it on purpose.`,
		Example: `  afterlife device init --registry http://127.0.0.1:8080
  afterlife device init --registry https://registry.example --root root.json --id usb:1d6b:0104 --product demo-cam --accept-community-firmware
  afterlife device init --registry https://registry.example --root new-root.json --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var root []byte
			if rootFile != "" {
				b, err := os.ReadFile(rootFile)
				if err != nil {
					return fmt.Errorf("read root: %w", err)
				}
				root = b
			}
			if err := device.Init(cmd.Context(), f.config(cmd), root, f.acceptCommunity); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "device state in %s now trusts %s\n", f.state, f.registry)
			return nil
		},
	}
	initCmd.Flags().StringVar(&rootFile, "root", "", "trusted root.json to pin (default: trust on first use)")
	initCmd.Flags().StringVar(&f.id, "id", "", "device id the device reports, e.g. usb:1d6b:0104 or dt:acme,cam200")
	initCmd.Flags().StringVar(&f.product, "product", "", "product this device is (default: learnt from the first install); releases of another product are refused")
	initCmd.Flags().BoolVar(&f.force, "force", false, "replace an already pinned, different root (forgets the metadata verified under it)")
	initCmd.Flags().StringVar(&f.channel, "channel", "stable", "release channel: stable or testing")
	initCmd.Flags().BoolVar(&f.acceptCommunity, "accept-community-firmware", false, "allow community releases to replace vendor firmware (remembered)")

	var current, checkCurrent string
	update := &cobra.Command{
		Use:   "update",
		Short: "Check for an update and install it into the inactive slot",
		Long: `Find the newest release this device may install, download it (resuming an
interrupted download), verify its length and sha256 against the signed TUF metadata,
install it into the inactive slot of --install-to and switch DIR/current to it, then
report the outcome to the registry with the receipt the download came with.

The registry's update offer is only a hint of where to look: product, version, channel,
the community flag and the minimum version are read from the signed TUF metadata, and a
release of another product or device, an older version (unless signed as a rollback) or
one for another channel is refused. Without an update API (a static mirror of /tuf/) or
with --from-metadata, the release is found in the signed metadata alone; the device must
then know its product (init --product, or an earlier install).

The first switch from vendor firmware to community firmware needs the owner's explicit
opt-in: --accept-community-firmware, or the same flag given to init.`,
		Example: `  afterlife device update --registry http://127.0.0.1:8080 --id demo:afterlife-cam \
      --install-to ./device --accept-community-firmware
  afterlife device update --registry https://mirror.example --from-metadata --install-to ./device`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := f.config(cmd)
			cfg.Progress = progress(cmd.ErrOrStderr())
			res, err := device.Update(cmd.Context(), cfg, current)
			if err != nil {
				return err
			}
			if !res.Updated {
				fmt.Fprintf(cmd.OutOrStdout(), "up to date (version %s)\n", res.Version)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "installed %s %s (release %s, sha256 %s) into slot %s of %s\n",
				res.Product, res.Version, res.ReleaseID, res.SHA256, res.Slot, f.installTo)
			if res.ReportErr != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: the install report did not reach the registry: %v\n", res.ReportErr)
			}
			return nil
		},
	}
	update.Flags().StringVar(&f.id, "id", "", "device id (default: the one given to init)")
	update.Flags().StringVar(&f.channel, "channel", "", "release channel (default: the one given to init)")
	update.Flags().StringVar(&current, "current", "", "version the device runs now (default: the version in the active slot, or 0)")
	update.Flags().BoolVar(&f.fromMetadata, "from-metadata", false, "find the release in the signed TUF metadata alone, without asking the update API")
	update.Flags().StringVar(&f.installTo, "install-to", "", "A/B install directory (required)")
	update.Flags().BoolVar(&f.acceptCommunity, "accept-community-firmware", false, "allow a community release to replace vendor firmware")
	_ = update.MarkFlagRequired("install-to")

	check := &cobra.Command{
		Use:   "check",
		Short: "Ask whether an update exists, without installing anything",
		Long: `Print the registry's update offer. The offer is a hint: update decides on the signed
TUF metadata and may refuse what check shows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			offer, err := device.Check(cmd.Context(), f.config(cmd), checkCurrent)
			if err != nil {
				return err
			}
			if offer == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "up to date")
				return nil
			}
			return printJSON(cmd.OutOrStdout(), offer)
		},
	}
	check.Flags().StringVar(&f.id, "id", "", "device id (default: the one given to init)")
	check.Flags().StringVar(&f.channel, "channel", "", "release channel (default: the one given to init)")
	check.Flags().StringVar(&checkCurrent, "current", "0", "version the device runs now")

	rollback := &cobra.Command{
		Use:   "rollback",
		Short: "Switch DIR/current back to the other slot",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := f.config(cmd)
			if err := device.Rollback(cfg); err != nil {
				return err
			}
			v, err := device.Current(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back; %s now runs %s\n", f.installTo, v)
			return nil
		},
	}
	rollback.Flags().StringVar(&f.installTo, "install-to", "", "A/B install directory (required)")
	_ = rollback.MarkFlagRequired("install-to")

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the version active in an A/B install directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := device.Current(f.config(cmd))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), v)
			return nil
		},
	}
	status.Flags().StringVar(&f.installTo, "install-to", "", "A/B install directory (required)")
	_ = status.MarkFlagRequired("install-to")

	cmd.AddCommand(initCmd, update, check, rollback, status)
	return cmd
}

// progress shows a bar on a terminal and nothing elsewhere (logs stay clean).
func progress(w io.Writer) func(done, total int64) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	var bar *progressbar.ProgressBar
	return func(done, total int64) {
		if bar == nil {
			bar = progressbar.DefaultBytes(total, "downloading")
		}
		_ = bar.Set64(done)
	}
}
