package stack

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc identifies one process by pid and start time, so a recycled pid is
// never mistaken for the server we started.
type proc struct {
	PID   int
	Start uint64 // clock ticks since boot (/proc/<pid>/stat field 22)
}

// stat returns the state letter and start time of pid.
func stat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return f[0][0], start, nil
}

// alive reports whether the recorded process still runs (a zombie does not).
func (p proc) alive() bool {
	if p.PID <= 0 {
		return false
	}
	state, start, err := stat(p.PID)
	if err != nil || start != p.Start {
		return false
	}
	if state == 'X' {
		return false
	}
	if state == 'Z' {
		// The leader of a multi-threaded process turns zombie before its
		// other threads finish exiting, and its files (the listening
		// socket) close only with the last thread: gone once alone.
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.PID))
		return err == nil && len(tasks) > 1
	}
	return true
}

// signal sends sig to the process group the server leads (it was started
// with setsid), falling back to the process alone.
func (p proc) signal(sig syscall.Signal) error {
	if !p.alive() {
		return nil
	}
	if err := syscall.Kill(-p.PID, sig); err == nil {
		return nil
	}
	return syscall.Kill(p.PID, sig)
}

// waitGone polls until the process is gone or the bound passes.
func (p proc) waitGone(ctx context.Context, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	for p.alive() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return !p.alive()
		}
		time.Sleep(20 * time.Millisecond) // polling a process we do not parent
	}
	return true
}

// rss returns the resident set size in bytes (0 when unknown).
func (p proc) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", p.PID))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func readPID(path string) (proc, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return proc{}, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return proc{}, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return proc{}, false
	}
	return proc{PID: pid, Start: start}, true
}

func writePID(path string, p proc) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", p.PID, p.Start)), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// spawn starts argv detached (own session, stdin /dev/null, stdout and
// stderr appended to logFile) so it outlives the caller.
func spawn(argv []string, logFile, dir string) (proc, error) {
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return proc{}, fmt.Errorf("open log: %w", err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "\n=== %s couponctl stack: %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return proc{}, err
	}
	// Reap the child if it exits while this process lives (a zombie would
	// look alive to kill(pid, 0)); if this process exits first, init adopts it.
	go func() { _ = cmd.Wait() }()
	_, start, err := stat(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		return proc{}, fmt.Errorf("read start time: %w", err)
	}
	return proc{PID: cmd.Process.Pid, Start: start}, nil
}

// portFree returns an error when 127.0.0.1:port cannot be bound.
func portFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	return l.Close()
}

// run runs a short helper command with output appended to logFile.
func run(ctx context.Context, logFile, dir string, env []string, argv ...string) error {
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "\n=== %s couponctl stack: %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout = lf
	cmd.Stderr = lf
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return nil
}
