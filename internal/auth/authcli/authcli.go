// Package authcli holds the admin commands of organisations and API
// tokens, and whoami. It speaks the API's JSON (wire.go) and never links
// the token store.
package authcli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// TokenCommand is "afterlife admin token".
func TokenCommand(cf *apicli.Flags) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke API tokens"}
	var name, role, org, operator, ttl string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a token; its secret is printed once and never stored",
		Example: `  afterlife admin token create --name acme-ci --role vendor --org acme
  afterlife admin org create alice-lab --kind operator
  afterlife admin token create --name builder-1 --role builder --operator alice-lab --ttl 90d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Token string   `json:"token"`
				Info  apiToken `json:"info"`
			}
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/admin/tokens", map[string]string{"name": name, "role": role, "org": org, "operator": operator, "ttl": ttl}, &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s (%s%s%s) created; store the secret above now, it is not shown again\n", out.Info.ID, out.Info.Role, orgSuffix(out.Info.Org), operatorSuffix(out.Info))
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "a name that says who or what uses the token (required)")
	create.Flags().StringVar(&role, "role", "", "admin, vendor, maintainer, builder or trustee (required)")
	create.Flags().StringVar(&org, "org", "", "organisation the token acts for (required for vendor)")
	create.Flags().StringVar(&operator, "operator", "", "builder tokens: the operator organisation (kind operator) that runs the builder; an unbound builder counts for nothing in a quorum")
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 90d or 12h (default: no expiry)")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("role")

	var listOrg string
	var listOut apicli.Output
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/v1/admin/tokens"
			if listOrg != "" {
				path += "?org=" + url.QueryEscape(listOrg)
			}
			var raw json.RawMessage
			if err := cf.Call(cmd.Context(), http.MethodGet, path, nil, &raw); err != nil {
				return err
			}
			return listOut.Print(cmd.OutOrStdout(), raw, func(tw io.Writer) error {
				var out struct {
					Tokens []apiToken `json:"tokens"`
				}
				if err := json.Unmarshal(raw, &out); err != nil {
					return fmt.Errorf("decode tokens: %w", err)
				}
				fmt.Fprintln(tw, "ID\tNAME\tROLE\tORG\tOPERATOR\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
				for _, t := range out.Tokens {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, apicli.Dash(t.Org), operatorColumn(t),
						apicli.Day(t.Created), apicli.Day(t.Expires), apicli.Day(t.LastUsed), apicli.Day(t.Revoked))
				}
				return nil
			})
		},
	}
	list.Flags().StringVar(&listOrg, "org", "", "only tokens of this organisation")
	listOut.Add(list)

	revoke := &cobra.Command{
		Use:   "revoke TOKEN_ID",
		Short: "Revoke a token (takes effect within seconds on every replica)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.Call(cmd.Context(), http.MethodDelete, "/v1/admin/tokens/"+args[0], nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		},
	}
	var bindOperator string
	bind := &cobra.Command{
		Use:   "bind TOKEN_ID --operator ORG",
		Short: "Bind a builder token to the operator organisation that runs the builder",
		Long: `Bind a builder token to an operator organisation (an org of kind operator).

A verdict counts distinct operators, and only an admin says which operator a
builder belongs to: whatever the builder itself claims is ignored. Builder
tokens made before operators were bound stay unbound, and their results count
for nothing, until this command binds them.`,
		Example: `  afterlife admin org create alice-lab --kind operator
  afterlife admin token bind tok_01H… --operator alice-lab`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out apiToken
			if err := cf.Call(cmd.Context(), http.MethodPut, "/v1/admin/tokens/"+args[0]+"/operator", map[string]string{"operator": bindOperator}, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s bound to operator %s\n", out.ID, out.Operator)
			return nil
		},
	}
	bind.Flags().StringVar(&bindOperator, "operator", "", "the operator organisation (required)")
	_ = bind.MarkFlagRequired("operator")
	cmd.AddCommand(create, list, bind, revoke)
	return cmd
}

// OrgCommand is "afterlife admin org".
func OrgCommand(cf *apicli.Flags) *cobra.Command {
	cmd := &cobra.Command{Use: "org", Short: "Create, rename and list organisations"}
	var orgName, orgKind string
	orgCreate := &cobra.Command{
		Use:     "create ID",
		Short:   "Create an organisation (a vendor, a maintainers' group, a builder operator…)",
		Example: `  afterlife admin org create acme --name "ACME Devices" --kind vendor`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/admin/orgs", map[string]string{"id": args[0], "name": orgName, "kind": orgKind}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "org %s created\n", args[0])
			return nil
		},
	}
	orgCreate.Flags().StringVar(&orgName, "name", "", "display name (default: the id)")
	orgCreate.Flags().StringVar(&orgKind, "kind", "vendor", "vendor, maintainers, operator, trustees or admin")
	var newName string
	orgRename := &cobra.Command{
		Use:     "rename ID --name NAME",
		Short:   "Change an organisation's display name (the name owners search for and see; the id stays)",
		Example: `  afterlife admin org rename lumatek --name "Lumatek Home"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if newName == "" {
				return errs.E(errs.Invalid, "--name is required")
			}
			if err := cf.Call(cmd.Context(), http.MethodPut, "/v1/admin/orgs/"+url.PathEscape(args[0]), map[string]string{"name": newName}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "org %s is now named %q\n", args[0], newName)
			return nil
		},
	}
	orgRename.Flags().StringVar(&newName, "name", "", "the new display name (required)")
	var listOut apicli.Output
	orgList := &cobra.Command{
		Use:   "list",
		Short: "List organisations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/admin/orgs", nil, &raw); err != nil {
				return err
			}
			return listOut.Print(cmd.OutOrStdout(), raw, func(tw io.Writer) error {
				var out struct {
					Orgs []apiOrg `json:"orgs"`
				}
				if err := json.Unmarshal(raw, &out); err != nil {
					return fmt.Errorf("decode organisations: %w", err)
				}
				fmt.Fprintln(tw, "ID\tNAME\tKIND\tCREATED")
				for _, o := range out.Orgs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.ID, o.Name, o.Kind, apicli.Day(o.Created))
				}
				return nil
			})
		},
	}
	listOut.Add(orgList)
	cmd.AddCommand(orgCreate, orgRename, orgList)
	return cmd
}

// WhoamiCommand is "afterlife admin whoami".
func WhoamiCommand(cf *apicli.Flags) *cobra.Command {
	var out apicli.Output
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who the token belongs to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/whoami", nil, &raw); err != nil {
				return err
			}
			return out.Print(cmd.OutOrStdout(), raw, func(tw io.Writer) error {
				var who map[string]any
				if err := json.Unmarshal(raw, &who); err != nil {
					return fmt.Errorf("decode whoami: %w", err)
				}
				keys := make([]string, 0, len(who))
				for k := range who {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%v\n", strings.ToUpper(k), who[k])
				}
				return nil
			})
		},
	}
	out.Add(cmd)
	return cmd
}

func orgSuffix(org string) string {
	if org == "" {
		return ""
	}
	return " of " + org
}

func operatorSuffix(t apiToken) string {
	if t.Role != principal.Builder {
		return ""
	}
	if t.Operator == "" {
		return ", not bound to an operator: its builds count for nothing until an admin binds it"
	}
	return ", operator " + t.Operator
}

func operatorColumn(t apiToken) string {
	if t.Role == principal.Builder && t.Operator == "" {
		return "(unbound)"
	}
	return apicli.Dash(t.Operator)
}
