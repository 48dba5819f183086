package main

import (
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
)

// Stamped at build time, for example by the Dockerfile and .ci/run:
//
//	go build -ldflags "-X main.version=v0.2.0 -X main.commit=$(git rev-parse HEAD)" .
//
// With pseudoVersion below they are the only package-level variables of the program; nothing
// assigns them at run time (-X can set only a package-level string variable).
var (
	version = ""
	commit  = ""
)

// buildInfo is what `pushlane version` prints.
type buildInfo struct {
	Version  string // "v0.2.0", or "dev" when neither stamped nor installed at a version
	Commit   string // full VCS revision, or "unknown"
	Modified bool   // the working tree had uncommitted changes (from the Go build information)
	Go       string // the Go toolchain that built the binary
	Platform string // GOOS/GOARCH
}

// pseudoVersion matches the version Go derives from a commit (v0.0.0-20261206203252-f688d444daed,
// "+dirty" for a modified tree) for a `go build` in a checkout: it names a commit, not a release,
// and the commit is printed anyway.
var pseudoVersion = regexp.MustCompile(`\d{14}-[0-9a-f]{12}(\+dirty)?$`)

// readBuildInfo prefers the -X stamps; what they leave empty comes from the Go build
// information (read, normally debug.ReadBuildInfo): the module version for `go install
// module@version` (not a pseudo-version), vcs.revision and vcs.modified for a `go build` inside a git checkout. `go run`
// and `go test` binaries carry no VCS information, so they report commit "unknown".
func readBuildInfo(stampedVersion, stampedCommit string, read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: stampedVersion, Commit: stampedCommit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := read(); ok && bi != nil {
		if bi.GoVersion != "" {
			b.Go = bi.GoVersion
		}
		if v := bi.Main.Version; b.Version == "" && v != "" && v != "(devel)" && !pseudoVersion.MatchString(v) {
			b.Version = bi.Main.Version
		}
		if b.Commit == "" {
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					b.Commit = s.Value
				case "vcs.modified":
					b.Modified = s.Value == "true"
				}
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
		b.Modified = false
	}
	return b
}

// String is the one line of `pushlane version`:
// "pushlane v0.2.0 (commit 826b92e1c0de, go1.26.8 linux/amd64)"; "+dirty" follows a commit
// built from a modified tree.
func (b buildInfo) String() string {
	c := b.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if b.Modified {
		c += "+dirty"
	}
	return fmt.Sprintf("pushlane %s (commit %s, %s %s)", b.Version, c, b.Go, b.Platform)
}

func printVersion(w io.Writer) int {
	fmt.Fprintln(w, readBuildInfo(version, commit, debug.ReadBuildInfo))
	return exitOK
}
