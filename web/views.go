package web

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/afterlife-oss/afterlife/internal/principal"
)

// The interfaces below are what web needs from the rest of afterlife. They
// are declared here, by the consumer, and return plain view structs that
// carry exactly what the pages show; web/live implements them with the
// running parts. Every method takes the caller's context first. Errors should carry
// an internal/errs kind: NotFound becomes a 404 page, Forbidden a 403,
// Invalid and Conflict a form error shown to the user.

// Catalog is the public product registry.
type Catalog interface {
	// Stats are the counts on the home page.
	Stats(ctx context.Context) (Stats, error)
	// Search finds the products whose vendor (its display name or org),
	// model, id or device ids match the words of q, in any order and
	// forgiving a small typo, best first. An empty q lists products. At
	// most limit of them, and how many match in all.
	Search(ctx context.Context, q string, limit int) (SearchResults, error)
	// Product is everything the public product page shows; errs.NotFound
	// when id is unknown.
	Product(ctx context.Context, id string) (*ProductPage, error)
	// VendorProducts lists the products registered by vendor organisation org.
	VendorProducts(ctx context.Context, org string) ([]ProductSummary, error)
	// CreateProduct registers a product for p's organisation and returns its id.
	CreateProduct(ctx context.Context, p principal.Principal, np NewProduct) (string, error)
}

// Farm is the build farm: builds, their jobs and logs, recipe submission.
type Farm interface {
	// Build is everything the build page shows; errs.NotFound when unknown.
	Build(ctx context.Context, id string) (*BuildPage, error)
	// Builds lists builds, newest first.
	Builds(ctx context.Context, f BuildFilter) ([]BuildSummary, error)
	// SubmitRecipe pins repo at ref, validates the recipe at path (empty
	// means afterlife.yaml) and queues its build; it returns the build id.
	SubmitRecipe(ctx context.Context, p principal.Principal, s RecipeSubmission) (string, error)
	// Log returns the bytes of a job's log from offset on (at most a few
	// hundred KiB per call), the offset to ask for next, and whether the
	// log is complete.
	Log(ctx context.Context, buildID, jobID string, offset int64) (LogChunk, error)
	// Activity is the farm's recent work: the queue through the last day
	// and the durations of the newest decided builds.
	Activity(ctx context.Context) (FarmActivity, error)
}

// Escrow is the vendor's side of the escrow: deposits, receipts, policies.
// Every method acts for p and only on p's organisation's deposits.
type Escrow interface {
	// Deposits lists p's organisation's deposits, newest first.
	Deposits(ctx context.Context, p principal.Principal) ([]DepositSummary, error)
	// CreateDeposit opens a deposit for a manifest; files are then uploaded
	// with UploadFile and the deposit sealed with CommitDeposit.
	CreateDeposit(ctx context.Context, p principal.Principal, d NewDeposit) (string, error)
	// UploadFile streams one manifest file's bytes; the escrow checks size
	// and sha256 against the manifest.
	UploadFile(ctx context.Context, p principal.Principal, depositID, path string, size int64, body io.Reader) error
	// CommitDeposit seals the deposit and returns its signed receipt.
	CommitDeposit(ctx context.Context, p principal.Principal, depositID string) (Receipt, error)
	// CheckIn records a dead-man check-in for every dead-man policy of
	// p's organisation.
	CheckIn(ctx context.Context, p principal.Principal) error
	// DepositFiles lists a deposit's files as p may see them: a released
	// deposit's for anyone, a sealed one's for its vendor and admins;
	// NotFound otherwise.
	DepositFiles(ctx context.Context, p principal.Principal, id string) (*DepositFiles, error)
}

// DepositFiles is the file list of a deposit.
type DepositFiles struct {
	ID, ProductID string
	Released      bool
	SealedAt      time.Time
	ReleasedAt    time.Time
	Files         []DepositFile
	JSONURL       string // the deposit and its manifest in the API
}

// DepositFile is one file of a deposit.
type DepositFile struct {
	Path, Kind, SHA256 string
	Size               int64
	Link               string // a symbolic link's target; no download
	URL                string // where it downloads; empty for a link
}

// Admin is the operators' view: builders, scrubs, approvals, tokens.
type Admin interface {
	// Builders lists registered builder agents.
	Builders(ctx context.Context) ([]BuilderRow, error)
	// Scrubs lists recent integrity scrub runs, newest first.
	Scrubs(ctx context.Context) ([]ScrubRow, error)
	// RootCustody says who holds the registry's TUF root.
	RootCustody(ctx context.Context) (RootCustody, error)
	// Approvals lists the quorum-policy deposits waiting for p's approval:
	// all for an admin, those naming p for a trustee (approval state only).
	Approvals(ctx context.Context, p principal.Principal) ([]ApprovalRow, error)
	// Approve records p's (a trustee's) approval for releasing a deposit.
	Approve(ctx context.Context, p principal.Principal, depositID string) error
	// Tokens lists API tokens (never their secrets).
	Tokens(ctx context.Context) ([]TokenRow, error)
	// CreateToken makes a token and returns its secret, shown once.
	CreateToken(ctx context.Context, p principal.Principal, t NewToken) (string, error)
	// RevokeToken revokes a token by id.
	RevokeToken(ctx context.Context, p principal.Principal, id string) error
}

// Authenticator turns a pasted API token into a principal; it returns an
// errs.Unauthenticated error for unknown, expired or revoked tokens.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (principal.Principal, error)
}

// Stats are the home page counts.
type Stats struct {
	Products      int // products handed over (status handed-over or community)
	Releases      int // firmware releases published
	Builders      int // builders that have reported in
	Reproducible  int // builds with a reproducible verdict
	LastUpdatedAt time.Time
}

// SearchResults are the products a search shows and how many match in all.
type SearchResults struct {
	Total    int
	Capped   bool // more than Total match: the search stopped counting
	Products []ProductSummary
}

// ProductSummary is one row of a search result or product list.
type ProductSummary struct {
	ID        string
	Vendor    string   // vendor display name
	Model     string   // model name
	Revisions []string // hardware revisions
	DeviceIDs []string // ids a device reports to identify itself
	RiskNotes string   // what owners should know, from the vendor
	Status    string   // supported | sunset | handed-over | community
	EOL       time.Time
	Latest    string       // newest stable version, empty when none
	Support   SupportDates // the declared support period
}

// ProductPage is the public product page.
type ProductPage struct {
	ID                string
	Vendor            string
	Model             string
	HardwareRevisions []string
	DeviceIDs         []string
	Status            string    // supported | sunset | handed-over | community
	EOL               time.Time // zero when no end of life is announced
	Timeline          []TimelineEvent
	Handovers         []Handover    // the vendor's handover statements that took effect
	Escrow            []EscrowState // one per deposit made for this product
	Channels          []Channel     // e.g. stable, testing; releases newest first
	InstallNotes      string        // Markdown from the recipe's install field, rendered and sanitised
	RiskNotes         []string      // plain text warnings: the product's (from its vendor or the registry)
	RecipeRiskNotes   []string      // plain text warnings of the newest release's recipe, from its maintainers
	Reports           ReportStats
	APIURL            string         // JSON of this page's data in the API
	FeedURL           string         // Atom feed of this product's releases
	Fwupd             *FwupdRemote   // set when fwupd devices can opt in to this product's releases
	Support           SupportDates   // the declared support period
	Lifecycle         []LifecycleDoc // its machine-readable, signed lifecycle documents
	// RegistryURL is how devices reach this registry, for the update
	// steps; the site sets it (the Catalog leaves it empty).
	RegistryURL string
}

// Latest is the newest release a device would be offered on the stable
// channel (or the first channel shown when there is no stable one): not
// yanked. Nil when there is none.
func (p *ProductPage) Latest() *Release {
	for _, name := range []string{"stable", ""} {
		for _, ch := range p.Channels {
			if name != "" && ch.Name != name {
				continue
			}
			for i := range ch.Releases {
				if !ch.Releases[i].Yanked {
					return &ch.Releases[i]
				}
			}
		}
	}
	return nil
}

// DeviceID is the device id the update steps use: the first one listed,
// or a placeholder the owner replaces.
func (p *ProductPage) DeviceID() string {
	if len(p.DeviceIDs) > 0 {
		return p.DeviceIDs[0]
	}
	return "DEVICE-ID"
}

// FwupdRemote tells an owner whose device runs fwupd how to opt in to the
// registry's fwupd remote.
type FwupdRemote struct {
	GUIDs   []string // the product's fwupd GUIDs
	Branch  string   // the fwupd branch its releases are on
	ConfURL string   // the remote's .conf file
	CAURL   string   // the CA certificate of the metadata signature
	Remote  string   // the remote's id (its .conf file's name)
}

// TimelineEvent is one step of a product's handover history.
type TimelineEvent struct {
	At     time.Time
	Title  string // e.g. "End of life announced", "Escrow released"
	Detail string
	LogURL string // its entry in the transparency log, when logged
}

// EscrowState is what the public may know of one deposit: its policy and
// whether it was released, never its content before release.
type EscrowState struct {
	DepositID  string
	Policy     Policy
	Released   bool
	SealedAt   time.Time
	ReleasedAt time.Time
	URL        string // where the released content can be browsed; empty while sealed
	Grant      string // the vendor's grant text (licence or written permission), released deposits only
	// Completeness is the public completeness score of the deposit, once
	// released: its sentence, per-class counts and signed statement.
	Completeness *CompletenessScore
}

// CompletenessScore is a deposit's public completeness score.
type CompletenessScore struct {
	Sentence                           string // "Deposit completeness: 94 % of the shipped image rebuilt bit-for-bit from the deposit"
	Identical, Differs, Missing, Extra int
	AttestationURL                     string
}

// Policy describes a release policy and its current state.
type Policy struct {
	Kind         string        // immediate | date | dead-man | quorum
	ReleaseAt    time.Time     // date policy: when it releases
	Every        time.Duration // dead-man: time between check-ins
	Grace        time.Duration // dead-man: grace after a missed check-in
	LastCheckIn  time.Time     // dead-man
	NextDeadline time.Time     // dead-man: the deadline the next check-in must beat (grace included)
	Quorum       int           // quorum: approvals needed (k)
	Trustees     int           // quorum: trustees who may approve (n)
	Approvals    []string      // quorum: names of trustees who approved so far
}

// Summary is the policy in one sentence.
func (p Policy) Summary() string {
	switch p.Kind {
	case "immediate":
		return "Released immediately."
	case "date":
		return "Released on " + p.ReleaseAt.UTC().Format("2 January 2006 at 15:04") + " UTC."
	case "dead-man":
		return fmt.Sprintf("Released if the vendor misses a check-in (every %s, %s grace).", span(p.Every), span(p.Grace))
	case "quorum":
		return fmt.Sprintf("Released when %d of %d trustees approve (%d so far).", p.Quorum, p.Trustees, len(p.Approvals))
	}
	return p.Kind
}

// Channel is a release channel and its releases, newest first.
type Channel struct {
	Name     string // stable | testing
	Releases []Release
}

// Release is one published firmware version.
type Release struct {
	Version     string
	PublishedAt time.Time
	Notes       string // plain text
	Artifacts   []Artifact
	Badge       Badge
	BuildID     string
	// Yanked releases stay listed on their channel, marked, with the
	// reason their maintainers gave.
	Yanked     bool
	YankReason string
	// Rollout says where a phased rollout stands ("stage 2 of 4: 10 % of
	// devices"), empty when the release goes to every device.
	Rollout string
	// Stages are the phased rollout's stages (none without one).
	Stages []RolloutStage
	// ReportDays are its counted install reports per day, oldest first,
	// only days with reports.
	ReportDays []ReportDay
}

// RolloutStage is one stage of a phased rollout.
type RolloutStage struct {
	Percent  int // of devices offered the release
	StartsAt time.Time
	Reached  bool
}

// ReportDay is one day (UTC) of a release's install reports.
type ReportDay struct {
	Day                          time.Time
	Success, Failure, RolledBack int // RolledBack: failed and went back to the previous firmware (not in Failure)
}

// Artifact is one downloadable file of a release.
type Artifact struct {
	Name   string
	Size   int64
	SHA256 string // lowercase hex, no "sha256:" prefix
	URL    string // download URL
	// SBOM is set on an SBOM the registry read: its format and what it
	// lists.
	SBOM *SBOM
}

// SBOM is what a release's SBOM lists.
type SBOM struct {
	Format     string // e.g. "CycloneDX 1.6", "SPDX 2.3"
	Subject    SBOMComponent
	Components []SBOMComponent
	Truncated  bool // it lists more than these
}

// SBOMComponent is one component an SBOM lists (a CycloneDX component, an
// SPDX package or file); Digest is its "sha256:…" when the SBOM gives one.
type SBOMComponent struct {
	Name, Version, Type, PURL, Digest string
}

// Badge is a release's reproducibility: how many independent builders agree.
type Badge struct {
	Agree      int
	Total      int
	VerdictURL string // the build page holding the verdict
}

// Reproducible reports whether at least two builders agree and none disagree.
func (b Badge) Reproducible() bool { return b.Total > 0 && b.Agree == b.Total }

// ReportStats summarise install reports from device owners and devices.
type ReportStats struct {
	Success int
	Failure int
}

// Total is the number of reports.
func (r ReportStats) Total() int { return r.Success + r.Failure }

// Rate is the success rate in whole percent (0 when there are no reports).
func (r ReportStats) Rate() int {
	if r.Total() == 0 {
		return 0
	}
	return r.Success * 100 / r.Total()
}

// NewProduct is the vendor's product registration form.
type NewProduct struct {
	Model             string
	HardwareRevisions []string
	DeviceIDs         []string
	EOL               time.Time    // zero when not announced
	Support           SupportDates // the support period declared with it
}

// BuildFilter selects builds.
type BuildFilter struct {
	Submitter string // the submitter as builds record it (principal.Actor, "maintainer:alice"); empty for all
	Limit     int
}

// BuildSummary is one row of a build list.
type BuildSummary struct {
	ID          string
	Recipe      string // recipe name
	Commit      string
	State       string // queued | running | reproducible | unreproducible | failed
	SubmittedAt time.Time
	Agree       int
	Total       int
}

// Releases is the registry's side of a release that maintainers act on.
type Releases interface {
	// Rollouts lists releases with a phased rollout and the newest
	// releases one can start on, newest first.
	Rollouts(ctx context.Context) ([]RolloutRow, error)
	// Rollout acts on a release's rollout for p: action "start" (with
	// stages such as "1,10,50,100" and the dwell time of each), "pause",
	// "resume" or "abort" (with a reason). Only a maintainer of the
	// product or an admin may (errs.Forbidden otherwise).
	Rollout(ctx context.Context, p principal.Principal, releaseID string, f RolloutForm) error
}

// RolloutRow is one release on the maintainer page's rollout list.
type RolloutRow struct {
	ReleaseID, Product, Version, Channel string
	State                                string // "" (no rollout), active, paused, halted, aborted
	Stage, Stages, Percent               int
}

// RolloutForm is what the rollout form posts.
type RolloutForm struct {
	Action string // start, pause, resume, abort
	Stages string // with start: percents, e.g. "1,10,50,100"
	Dwell  time.Duration
	Reason string // with pause, resume, abort
}

// RecipeSubmission is the maintainer's recipe form.
type RecipeSubmission struct {
	Repo string // git repository URL
	Ref  string // branch, tag or commit
	Path string // recipe file in the repository; empty means afterlife.yaml
}

// BuildPage is the build and verdict page.
type BuildPage struct {
	ID          string
	Recipe      string
	Repo        string
	Ref         string
	Commit      string
	Path        string
	Products    []string // product ids the recipe targets
	SubmittedBy string
	SubmittedAt time.Time
	State       string // queued | running | reproducible | unreproducible | failed
	Jobs        []Job
	Verdict     *Verdict // nil until decided
	APIURL      string
	// BuildOnly are the vendor-permitted build-only inputs the build read
	// (never published), each with the grant its vendor deposited.
	BuildOnly []BuildOnlyInput
}

// BuildOnlyInput is an escrow file its vendor allows as a build input only.
type BuildOnlyInput struct {
	Path    string // where the build saw it, under /inputs/
	SHA256  string
	Deposit string
	Vendor  string
	Grant   string // the vendor's grant text, quoted
}

// Finished reports whether the build will change no more.
func (b *BuildPage) Finished() bool { return b.Verdict != nil || b.State == "failed" }

// Job is one builder's run of a build.
type Job struct {
	ID       string
	Builder  string
	Operator string // "" when the builder's token is not bound to an operator
	// Cold marks the cold witness: the job that ran with empty caches and
	// must agree for the build to be reproducible.
	Cold           bool
	State          string // queued | running | done | failed
	StartedAt      time.Time
	FinishedAt     time.Time
	Outputs        []Output
	AttestationURL string // signed in-toto attestation, empty until done
	BuildinfoURL   string
}

// Running reports whether the job's log may still grow.
func (j Job) Running() bool { return j.State == "queued" || j.State == "running" }

// Output is one file a job produced.
type Output struct {
	Path   string
	SHA256 string // lowercase hex
	Size   int64
}

// Verdict is the farm's decision on a build.
type Verdict struct {
	Reproducible bool
	Agree        int // builders whose outputs match the majority
	Total        int // builders that finished
	Required     int // k: agreeing builders needed
	Differences  []Difference
	Diffoscope   string // diffoscope text output, when available
	DecidedAt    time.Time
	Release      string // the release version published from it, if any
	ProductID    string
}

// Difference is one output path on which builders disagree.
type Difference struct {
	Path    string
	Digests []BuilderDigest
}

// BuilderDigest is what one builder produced for a path.
type BuilderDigest struct {
	Builder string
	SHA256  string
}

// LogChunk is a piece of a job log.
type LogChunk struct {
	Data []byte
	Next int64 // offset to ask for next
	Done bool  // the log will not grow any more
}

// DepositSummary is one of a vendor's deposits.
type DepositSummary struct {
	ID        string
	ProductID string
	State     string // open | sealed | released
	CreatedAt time.Time
	Files     int
	Bytes     int64
	Policy    Policy
	Receipt   *Receipt // nil while open
	// Completeness is the vendor's own view of the sealed completeness
	// check: its sentence (or that it runs or failed, and why), whether it
	// is public, and the shipped files that were missing or differ.
	Completeness *VendorCompleteness
}

// VendorCompleteness is a deposit's completeness check as its vendor sees it.
type VendorCompleteness struct {
	Summary string
	Public  bool
	Gaps    []string // "missing acme-thermo-2.4.1.tar/sensor-table.bin"
}

// Receipt is the signed receipt of a sealed deposit.
type Receipt struct {
	DepositID      string
	ManifestSHA256 string // digest of the canonical manifest
	SealedAt       time.Time
	KeyID          string
	Signature      string // base64
	URL            string // the receipt as JSON
}

// NewDeposit opens a deposit.
type NewDeposit struct {
	ProductID string
	Policy    PolicyChoice
	Manifest  []ManifestEntry
	// Rights are rights rules as PATTERN=CLASS (public, build-only,
	// private), in order; the last match wins, an unnamed file is private.
	Rights []string
	Grant  string // the vendor's licence or written permission
}

// PolicyChoice is the policy a vendor chose for a deposit, read from the
// form (PolicySpec); the escrow checks it by the policy's own rules.
type PolicyChoice struct {
	Kind      string        // immediate | date | dead-man | quorum
	ReleaseAt time.Time     // date: the release instant
	Every     time.Duration // dead-man: the check-in period
	Grace     time.Duration // dead-man: the grace after a missed check-in
	Quorum    int           // quorum: approvals needed
	Trustees  []string      // quorum: the trustees who may approve
}

// ManifestEntry is one file of a deposit.
type ManifestEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lowercase hex
	Kind   string `json:"kind"`   // spec | source | toolchain | keys | other; "": inferred from the path
}

// BuilderRow is one builder agent.
type BuilderRow struct {
	Name         string
	Operator     string
	LastSeen     time.Time
	Capabilities []string
	JobsDone     int
}

// RootCustody is who holds the registry's TUF root: a threshold of
// custodians' keys, or the one key this server holds.
type RootCustody struct {
	Version   int64
	Threshold int
	Keys      int
	// SingleServerKey: one key, on this server, can replace the root.
	SingleServerKey bool
}

// ScrubRow is one integrity scrub run.
type ScrubRow struct {
	At      time.Time
	Checked int
	Bad     int
	Detail  string
}

// ApprovalRow is a quorum deposit waiting for trustees.
type ApprovalRow struct {
	DepositID string
	ProductID string
	Vendor    string
	Quorum    int
	Trustees  int
	Approvals []string
}

// TokenRow is an API token without its secret.
type TokenRow struct {
	ID        string
	Name      string
	Role      string
	Org       string
	CreatedAt time.Time
	ExpiresAt time.Time // zero for no expiry
	Revoked   bool
}

// NewToken is the admin's token form.
type NewToken struct {
	Name string
	Role string
	Org  string
	TTL  time.Duration // 0 for no expiry
}
