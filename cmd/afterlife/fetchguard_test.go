package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestRecipeSubmissionsCannotReachInternalAddresses submits, to a real
// server without --allow-local-repos, repository URLs that name the
// server's own loopback services: one that answers nothing, one that
// answers 404 over HTTP. No submission may connect to them, and every
// refusal must read the same, so the answers cannot tell what listens
// inside. Credentials in a URL are refused and never logged. Fetching
// happens before anything is stored, so one backend is enough.
func TestRecipeSubmissionsCannotReachInternalAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var silent atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			silent.Add(1)
			c.Close()
		}
	}()
	var web atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.Add(1)
		http.NotFound(w, r)
	}))
	defer internal.Close()
	_, silentPort, _ := net.SplitHostPort(ln.Addr().String())
	_, webPort, _ := net.SplitHostPort(internal.Listener.Addr().String())

	srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--local-builders", "0"}})
	maint, _ := afterlife(t, true, "admin", "token", "create", "--name", "fetch-attacker", "--role", "maintainer", "--server", srv.URL, "--token", srv.Token)
	maint = strings.TrimSpace(maint)

	urls := []string{
		"http://127.0.0.1:" + silentPort + "/x.git",
		"https://127.0.0.1:" + silentPort + "/x.git",
		"http://127.0.0.1:" + webPort + "/x.git",
		"https://127.0.0.1:" + webPort + "/x.git",
		"https://localhost:" + webPort + "/x.git",
		"https://[::ffff:127.0.0.1]:" + webPort + "/x.git",
		"https://maintainer:hunter2-secret@127.0.0.1:" + webPort + "/x.git",
		"file:///etc",
	}
	type answer struct {
		Status  int
		Code    string
		Message string
	}
	var first answer
	for i, u := range urls {
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		status := apiJSON(t, "POST", srv.URL+"/v1/recipes", maint, map[string]string{"repo": u, "ref": "main"}, &body)
		got := answer{status, body.Error.Code, body.Error.Message}
		if i == 0 {
			first = got
			if status != http.StatusBadRequest || got.Code == "" {
				t.Errorf("submitting %s: %+v, want a 400 refusal", u, got)
			}
			continue
		}
		if got != first {
			t.Errorf("submitting %s answered %+v, but %s answered %+v: the answers tell internal services apart", u, got, urls[0], first)
		}
	}
	if n := silent.Load(); n != 0 {
		t.Errorf("the server connected %d times to a loopback port", n)
	}
	if n := web.Load(); n != 0 {
		t.Errorf("the server sent %d requests to an internal web service", n)
	}
	log, err := os.ReadFile(srv.Log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "hunter2-secret") {
		t.Error("the server logged the credentials of a submitted URL")
	}
}
