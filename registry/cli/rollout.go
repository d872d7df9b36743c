package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// rolloutCommand is `afterlife release rollout`: start, pause,
// resume and abort a release's phased rollout.
// The rollout actions, as registry.RolloutPause, RolloutResume and
// RolloutAbort name them in the API's paths.
const (
	rolloutPause  = "pause"
	rolloutResume = "resume"
	rolloutAbort  = "abort"
)

func rolloutCommand(cf *apicli.Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Roll a release out in stages (1% → 10% → 50% → 100%); pause, resume or abort it",
		Long: `A phased rollout offers a release to a growing share of its channel's devices: each
device's bucket (0–99, a hash of its random install id) is in the rollout while it is below
the stage's percent. Stages follow each other after their dwell time; they are computed
from the start time, never stored per device, and signed into the release's TUF targets so
that devices updating from a mirror follow them too. Failure reports with download receipts
that pass the product's pull-back policy halt a rollout; resume it after review.
A maintainer of the product or an admin runs these.`,
	}
	show := func(cmd *cobra.Command, rel release) {
		ro := rel.Rollout
		if ro == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s has no rollout: it is offered to every device on %s\n", rel.Product, rel.Version, rel.Channel)
			return
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s: rollout %s, stage %d of %d, %d%% of devices on %s\n",
			rel.Product, rel.Version, ro.State, ro.Stage, len(ro.Stages), ro.Percent, rel.Channel)
	}

	var percents string
	var dwell time.Duration
	start := &cobra.Command{
		Use:     "start RELEASE_ID [--stages 1,10,50,100] [--dwell 24h]",
		Short:   "Start a phased rollout of a release, now",
		Example: `  afterlife release rollout start rel_… --stages 1,10,50,100 --dwell 24h`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stages, err := device.ParseStages(percents, dwell)
			if err != nil {
				return err
			}
			var rel release
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/releases/"+url.PathEscape(args[0])+"/rollout", rolloutRequest{Stages: stages}, &rel); err != nil {
				return err
			}
			show(cmd, rel)
			return nil
		},
	}
	start.Flags().StringVar(&percents, "stages", "1,10,50,100", "percent of devices of each stage, growing, ending at 100")
	start.Flags().DurationVar(&dwell, "dwell", 24*time.Hour, "how long each stage but the last lasts")

	change := func(action, short string) *cobra.Command {
		var why string
		c := &cobra.Command{
			Use:   action + " RELEASE_ID --reason TEXT",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var rel release
				if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/releases/"+url.PathEscape(args[0])+"/rollout/"+action, reviewRequest{Reason: why}, &rel); err != nil {
					return err
				}
				show(cmd, rel)
				return nil
			},
		}
		c.Flags().StringVar(&why, "reason", "", "why, for the audit log (required)")
		_ = c.MarkFlagRequired("reason")
		return c
	}
	cmd.AddCommand(start,
		change(rolloutPause, "Pause a rollout: its stage stays where it is"),
		change(rolloutResume, "Resume a paused or halted rollout where it stopped"),
		change(rolloutAbort, "Abort a rollout: the release is offered to no more devices"))
	return cmd
}
