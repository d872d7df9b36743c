package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// grantRequest is the body of POST /v1/products/:id/maintainers.
type grantRequest struct {
	Name string `json:"name"`
	Org  string `json:"org"`
}

// grant is a maintainer allowed on a product, as the server writes it.
type grant struct {
	Product   string    `json:"product"`
	Name      string    `json:"name,omitempty"`
	Org       string    `json:"org,omitempty"`
	GrantedAt time.Time `json:"granted_at"`
	GrantedBy string    `json:"granted_by"`
}

// MaintainerCommand is "afterlife admin maintainer": who may publish a
// product's releases.
func MaintainerCommand(cf *apicli.Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintainer",
		Short: "Allow maintainers to publish a product's releases, take it back, list them",
		Long: `A maintainer publishes, promotes and rolls out releases only for the products an admin
granted: to one maintainer token (--name, the token's name) or to every maintainer
token of an organisation (--org). Revoking stops new publications; releases already
published stay.`,
		Example: `  afterlife admin maintainer grant acme-cam200 --org openfw
  afterlife admin maintainer grant acme-cam200 --name alice
  afterlife admin maintainer list acme-cam200
  afterlife admin maintainer revoke acme-cam200 --name alice`,
	}
	var req grantRequest
	who := func(c *cobra.Command) {
		c.Flags().StringVar(&req.Name, "name", "", "a maintainer token's name")
		c.Flags().StringVar(&req.Org, "org", "", "an organisation: every maintainer token of it")
		c.MarkFlagsOneRequired("name", "org")
		c.MarkFlagsMutuallyExclusive("name", "org")
	}
	grantCmd := &cobra.Command{
		Use:   "grant PRODUCT (--name TOKEN_NAME | --org ORG)",
		Short: "Allow a maintainer token or an organisation's maintainers to publish a product's releases",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var g grant
			if err := cf.Call(cmd.Context(), http.MethodPost, "/v1/products/"+url.PathEscape(args[0])+"/maintainers", req, &g); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s may now publish releases of %s\n", grantee(g.Name, g.Org), args[0])
			return nil
		},
	}
	who(grantCmd)
	revokeCmd := &cobra.Command{
		Use:   "revoke PRODUCT (--name TOKEN_NAME | --org ORG)",
		Short: "Take a grant back: no new releases of the product by them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if req.Name != "" {
				q.Set("name", req.Name)
			} else {
				q.Set("org", req.Org)
			}
			if err := cf.Call(cmd.Context(), http.MethodDelete, "/v1/products/"+url.PathEscape(args[0])+"/maintainers?"+q.Encode(), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s may no longer publish releases of %s\n", grantee(req.Name, req.Org), args[0])
			return nil
		},
	}
	who(revokeCmd)
	var out apicli.Output
	listCmd := &cobra.Command{
		Use:   "list PRODUCT",
		Short: "List who may publish a product's releases",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := cf.Call(cmd.Context(), http.MethodGet, "/v1/products/"+url.PathEscape(args[0])+"/maintainers", nil, &raw); err != nil {
				return err
			}
			return out.Print(cmd.OutOrStdout(), raw, func(tw io.Writer) error {
				var gs struct {
					Maintainers []grant `json:"maintainers"`
				}
				if err := json.Unmarshal(raw, &gs); err != nil {
					return errs.Wrap(errs.Internal, err, "decode maintainers")
				}
				fmt.Fprintln(tw, "MAINTAINER\tGRANTED\tBY")
				for _, g := range gs.Maintainers {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", grantee(g.Name, g.Org), apicli.Day(g.GrantedAt), g.GrantedBy)
				}
				return nil
			})
		},
	}
	out.Add(listCmd)
	cmd.AddCommand(grantCmd, revokeCmd, listCmd)
	return cmd
}

func grantee(name, org string) string {
	if org != "" {
		return "organisation " + org
	}
	return "token " + name
}
