package main

import (
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// newVendor makes vendor org org on srv with the admin's token and returns
// a vendor token of it.
func newVendor(t *testing.T, srv *testenv.Server, org string) string {
	t.Helper()
	if code := apiJSON(t, "POST", srv.URL+"/v1/admin/orgs", srv.Token, map[string]string{"id": org, "kind": "vendor"}, nil); code != 201 {
		t.Fatalf("create org %s: %d", org, code)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if code := apiJSON(t, "POST", srv.URL+"/v1/admin/tokens", srv.Token, map[string]string{"name": org, "role": "vendor", "org": org}, &tok); code != 201 {
		t.Fatalf("vendor token for %s: %d", org, code)
	}
	return tok.Token
}
