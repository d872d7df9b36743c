package main

import (
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/registry"
)

func newReleaseCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Publish reproducible builds as firmware releases; promote, roll out, yank, pull back and list them",
		Long: `Releases are what devices are offered. Only a build with a reproducible verdict can
become one; publishing re-signs the registry's TUF metadata. Admins may publish any
product, maintainers the products an admin allowed them on.`,
	}
	cf.add(cmd)

	var req registry.PublishRequest
	var rolloutStages string
	var rolloutDwell time.Duration
	publish := &cobra.Command{
		Use:     "publish --build ID --product ID --version V",
		Short:   "Publish a reproducible build as a release (channel testing unless told)",
		Example: `  afterlife release publish --build bld_… --product acme-cam200 --version 1.2.0 --notes "fixes the RTSP crash"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rolloutStages != "" {
				var err error
				if req.Rollout, err = registry.ParseStages(rolloutStages, rolloutDwell); err != nil {
					return err
				}
			}
			var rel registry.Release
			if err := cf.call(cmd.Context(), http.MethodPost, "/v1/releases", req, &rel); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release %s: %s %s on %s (%d of %d builders agreed)\n", rel.ID, rel.Product, rel.Version, rel.Channel, rel.Agreeing, rel.Total)
			return nil
		},
	}
	publish.Flags().StringVar(&req.BuildID, "build", "", "build with a reproducible verdict (required)")
	publish.Flags().StringVar(&req.Product, "product", "", "product id (required)")
	publish.Flags().StringVar(&req.Version, "version", "", "firmware version, e.g. 1.2.0 (required)")
	publish.Flags().StringVar(&req.Channel, "channel", "testing", "testing or stable")
	publish.Flags().StringVar(&req.Notes, "notes", "", "release notes")
	publish.Flags().StringVar(&req.MinVersion, "min-version", "", "oldest version that may update straight to this one")
	publish.Flags().StringVar(&rolloutStages, "rollout", "", "publish in a phased rollout with these stages, e.g. 1,10,50,100 (see release rollout)")
	publish.Flags().DurationVar(&rolloutDwell, "dwell", 24*time.Hour, "with --rollout: how long each stage but the last lasts")
	for _, f := range []string{"build", "product", "version"} {
		_ = publish.MarkFlagRequired(f)
	}

	promote := &cobra.Command{
		Use:   "promote RELEASE_ID",
		Short: "Promote a release from testing to stable",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rel registry.Release
			if err := cf.call(cmd.Context(), http.MethodPost, "/v1/releases/"+url.PathEscape(args[0])+"/promote", nil, &rel); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s is on %s\n", rel.Product, rel.Version, rel.Channel)
			return nil
		},
	}

	var reason string
	yank := &cobra.Command{
		Use:   "yank RELEASE_ID --reason TEXT",
		Short: "Yank a release: offered to no device, signed as yanked with the reason so devices running it move on",
		Long: `A yanked release stays in the signed TUF metadata, marked yanked with the reason, so devices
running it learn of the yank (also from a mirror) and move to the newest release their
channel still offers. When that release is older, the registry signs on it the permission
to go back to it from exactly the yanked version; no other downgrade is allowed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rel registry.Release
			if err := cf.call(cmd.Context(), http.MethodPost, "/v1/releases/"+url.PathEscape(args[0])+"/yank", map[string]string{"reason": reason}, &rel); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s yanked\n", rel.Product, rel.Version)
			return nil
		},
	}
	yank.Flags().StringVar(&reason, "reason", "", "why: kept for the audit log and signed for devices (required)")
	_ = yank.MarkFlagRequired("reason")

	review := func(use, short, long, path, done string) *cobra.Command {
		var why string
		c := &cobra.Command{
			Use:   use + " RELEASE_ID --reason TEXT",
			Short: short,
			Long:  long,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var rel registry.Release
				if err := cf.call(cmd.Context(), http.MethodPost, "/v1/releases/"+url.PathEscape(args[0])+"/"+path, registry.ReviewRequest{Reason: why}, &rel); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s (channel %s)\n", rel.Product, rel.Version, done, rel.Channel)
				return nil
			},
		}
		c.Flags().StringVar(&why, "reason", "", "why, for the audit log (required)")
		_ = c.MarkFlagRequired("reason")
		return c
	}
	pullBack := review("pull-back", "Pull a release back to testing, offered to nobody (a maintainer of the product, or admin)",
		`Confirm that a release must stop being installed: it goes back to testing, is offered to no
device, its TUF targets are re-signed as pulled back, and it cannot be promoted again.
Failure reports from many networks only hold a release for review; pulling a stable release
back always takes this confirmation.`, "pull-back", "pulled back")
	resume := review("resume", "Lift a release's review hold: offered again on its channel",
		`A release is held for review when receipt-bearing failure reports from enough source
networks pass the product's policy. Resume it when the review finds nothing wrong.`, "resume", "offered again")

	var product string
	list := &cobra.Command{
		Use:   "list [--product ID]",
		Short: "List releases, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Releases []registry.Release `json:"releases"`
			}
			if err := cf.call(cmd.Context(), http.MethodGet, "/v1/releases?product="+url.QueryEscape(product), nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPRODUCT\tVERSION\tCHANNEL\tAGREE\tSTATE\tPUBLISHED")
			for _, r := range out.Releases {
				state := "offered"
				switch {
				case r.Yanked:
					state = "yanked"
				case r.PulledBack:
					state = "pulled back"
				case r.Held:
					state = "held for review"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", r.ID, r.Product, r.Version, r.Channel, r.Agreeing, r.Total, state, day(r.PublishedAt))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&product, "product", "", "only this product")
	cmd.AddCommand(publish, promote, yank, pullBack, resume, list, newReleaseRolloutCmd(&cf))
	return cmd
}
