package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestReadBuildInfo: -X stamps win; what they leave empty comes from the Go build information;
// nothing at all gives "dev" and "unknown".
func TestReadBuildInfo(t *testing.T) {
	vcs := func(rev, modified string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "pushlane", Version: "(devel)"}}
			if rev != "" {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: "vcs.revision", Value: rev})
			}
			if modified != "" {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: "vcs.modified", Value: modified})
			}
			return bi, true
		}
	}
	installed := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "pushlane", Version: "v0.3.1"}}, true
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	const rev = "0123456789abcdef0123456789abcdef01234567"
	pseudo := func() (*debug.BuildInfo, bool) {
		bi, _ := vcs(rev, "true")()
		bi.Main.Version = "v0.0.0-20261206203252-0123456789ab+dirty"
		return bi, true
	}
	cases := []struct {
		name            string
		version, commit string
		read            func() (*debug.BuildInfo, bool)
		want            string
	}{
		{"stamped", "v1.2.3", "fedcba9876543210", vcs(rev, "true"), "pushlane v1.2.3 (commit fedcba987654, go1.99.1 "},
		{"vcs fallback", "", "", vcs(rev, "false"), "pushlane dev (commit 0123456789ab, go1.99.1 "},
		{"vcs fallback, modified tree", "", "", vcs(rev, "true"), "pushlane dev (commit 0123456789ab+dirty, go1.99.1 "},
		{"stamped version, vcs commit", "v1.2.3", "", vcs(rev, "false"), "pushlane v1.2.3 (commit 0123456789ab, "},
		{"go build in a checkout: a pseudo-version", "", "", pseudo, "pushlane dev (commit 0123456789ab+dirty, go1.99.1 "},
		{"go install at a version", "", "", installed, "pushlane v0.3.1 (commit unknown, go1.99.1 "},
		{"no build information", "", "", none, "pushlane dev (commit unknown, go"},
		{"go run: no vcs settings", "", "", vcs("", ""), "pushlane dev (commit unknown, go1.99.1 "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := readBuildInfo(tc.version, tc.commit, tc.read).String()
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want it to start with %q", got, tc.want)
			}
		})
	}
}

// TestRunVersion: `pushlane version` and `pushlane --version` print one line and exit 0; this
// test binary is not stamped and carries no VCS information.
func TestRunVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version"} {
		var stdout, stderr syncBuffer
		code := run(t.Context(), []string{arg}, noEnv, nil, &stdout, &stderr)
		if code != exitOK {
			t.Errorf("%s: exit %d, stderr %q", arg, code, stderr.String())
		}
		out := stdout.String()
		if !strings.HasPrefix(out, "pushlane dev (commit unknown, go") || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: printed %q", arg, out)
		}
	}
}
