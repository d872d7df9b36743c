package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// clientFlags are the settings every client command shares.
type clientFlags struct {
	server    string
	token     string
	tokenFile string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.server, "server", envOr("AFTERLIFE_SERVER", "http://127.0.0.1:8080"), "afterlife server URL (env AFTERLIFE_SERVER)")
	cmd.PersistentFlags().StringVar(&f.token, "token", os.Getenv("AFTERLIFE_TOKEN"), "API token (env AFTERLIFE_TOKEN)")
	cmd.PersistentFlags().StringVar(&f.tokenFile, "token-file", "", "read the API token from this file (default: ./data/admin.token when present and no token is given)")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// client builds an API client from the flags.
func (f *clientFlags) client() (*apiClient, error) {
	token := f.token
	switch {
	case f.tokenFile != "":
		t, err := readTokenFile(f.tokenFile)
		if err != nil {
			return nil, err
		}
		token = t
	case token == "":
		if t, err := readTokenFile(filepath.Join("data", "admin.token")); err == nil {
			token = t
		}
	}
	return &apiClient{base: strings.TrimRight(f.server, "/"), token: token, http: httpclient.New(httpclient.Options{RetryMax: 4})}, nil
}

// call makes one JSON API call with the flags' server and token.
func (f *clientFlags) call(ctx context.Context, method, path string, in, out any) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	return c.do(ctx, method, path, in, out)
}

// apiClient speaks the /v1 JSON API and turns error bodies back into errors
// with kinds.
type apiClient struct {
	base  string
	token string
	http  *retryablehttp.Client
}

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "request %s %s", method, path)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "cannot reach %s", c.base)
	}
	defer httpclient.Drain(resp)
	return decodeResponse(resp, out)
}

// decodeResponse reads a JSON answer into out, or the API's error shape into
// an error of the matching kind.
func decodeResponse(resp *http.Response, out any) error {
	if resp.StatusCode >= 400 {
		return httpclient.DecodeError(resp, "")
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// printJSON writes v indented, for commands whose output is data.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
