package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// tool is an executable a service needs and the Debian package shipping it.
type tool struct{ bin, pkg string }

// sbinDirs are searched too: a non-root PATH often lacks them.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// lookTool finds an executable in PATH or the sbin folders.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// mustLook returns the path of name, or name itself (exec then reports it).
func mustLook(name string) string {
	if p, err := lookTool(name); err == nil {
		return p
	}
	return name
}

// MissingPackages returns the Debian packages needed by services whose
// executables are missing.
func MissingPackages(s *Stack, services []string) []string {
	missing := map[string]bool{}
	for _, name := range services {
		svc, ok := s.svcs[name]
		if !ok {
			continue
		}
		for _, t := range svc.tools() {
			if _, err := lookTool(t.bin); err != nil {
				missing[t.pkg] = true
			}
		}
	}
	return sortedKeys(missing)
}

// InstallCommand is the shell command installing pkgs.
func InstallCommand(pkgs []string) string {
	return "sudo apt-get update && sudo apt-get install -y --no-install-recommends " + strings.Join(pkgs, " ")
}

// ensureTools installs missing Debian packages when running as root (and
// allowed), else fails with the exact command to run.
func (s *Stack) ensureTools(ctx context.Context, services []string) error {
	pkgs := MissingPackages(s, services)
	if len(pkgs) == 0 {
		return nil
	}
	if !s.cfg.InstallPackages || os.Geteuid() != 0 {
		return fmt.Errorf("missing Debian packages %s; install them with:\n  %s", strings.Join(pkgs, ", "), InstallCommand(pkgs))
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("missing packages %s and no apt-get to install them", strings.Join(pkgs, ", "))
	}
	s.printf("installing missing Debian packages: %s", strings.Join(pkgs, " "))
	// Keep the packages' maintainer scripts from starting system-wide
	// servers (they would take the dev profile's ports).
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# written by couponctl stack during apt-get install\nexit 101\n"), 0o755); err == nil {
			defer os.Remove(policy)
		}
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	logFile := filepath.Join(s.cfg.Dir, "apt.log")
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	if err := run(ctx, logFile, s.cfg.Dir, env, "apt-get", "update"); err != nil {
		return fmt.Errorf("apt-get update: %w%s", err, tailNote(logFile))
	}
	args := append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, pkgs...)
	if err := run(ctx, logFile, s.cfg.Dir, env, args...); err != nil {
		return fmt.Errorf("apt-get install: %w%s", err, tailNote(logFile))
	}
	if still := MissingPackages(s, services); len(still) > 0 {
		return fmt.Errorf("still missing after apt-get install: %s", strings.Join(still, ", "))
	}
	s.printf("installed %s", strings.Join(pkgs, " "))
	return nil
}
