// Package proc starts and supervises the child processes couponctl runs
// (the gateway and the sinker under `run` and `bench`): each in its own
// process group, watched until it exits, stopped with SIGTERM and then
// SIGKILL.
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Child is one started process.
type Child struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts the binary at path with args as name, with env and the
// given output.
// The child gets its own process group (a terminal's Ctrl-C reaches the
// parent only, which stops its children in order) and SIGTERM when the
// parent dies. onExit, when set, runs once the child has exited (to close
// a log file).
func Start(name, path string, args, env []string, stdout, stderr io.Writer, onExit func()) (*Child, error) {
	cmd := exec.Command(path, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		if onExit != nil {
			onExit()
		}
		close(c.done)
	}()
	return c, nil
}

// Pid is the child's process ID.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Done is closed once the child has exited.
func (c *Child) Done() <-chan struct{} { return c.done }

// Err is how the child exited (nil: status 0); valid once Done is closed.
func (c *Child) Err() error { return c.err }

func (c *Child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Group is children in the order they were started.
type Group []*Child

// Stop sends SIGTERM to every running child, the last started first (the
// gateway stops taking requests before the sinker drains), and SIGKILL to
// one still running after bound; it says on out which stopped cleanly and
// returns every unclean exit.
func (g Group) Stop(bound time.Duration, out io.Writer) error {
	var errs []error
	for i := len(g) - 1; i >= 0; i-- {
		c := g[i]
		if c.exited() {
			continue
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
			if c.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.Name, c.err))
			} else {
				fmt.Fprintf(out, "%s stopped cleanly\n", c.Name)
			}
		case <-time.After(bound):
			_ = c.cmd.Process.Kill()
			<-c.done
			errs = append(errs, fmt.Errorf("%s did not exit within %s after SIGTERM: killed", c.Name, bound))
		}
	}
	return errors.Join(errs...)
}

// Exited delivers the first child to exit.
func (g Group) Exited() <-chan *Child {
	first := make(chan *Child, len(g))
	for _, c := range g {
		go func() { <-c.done; first <- c }()
	}
	return first
}

// WaitReady polls url until it answers 200; it fails when a child of g
// exits first, ctx ends or within passes.
func (g Group) WaitReady(ctx context.Context, url string, within time.Duration) error {
	cl := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	last := errors.New("no answer yet")
	for time.Now().Before(deadline) {
		for _, c := range g {
			if c.exited() {
				return fmt.Errorf("%s exited: %v", c.Name, c.err)
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := cl.Do(req); err != nil {
			last = err
		} else {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answers %s", url, resp.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// PrefixWriter writes each whole line to w prefixed with name, so that the
// output of several children stays apart.
func PrefixWriter(name string, w io.Writer) io.Writer {
	return &lineWriter{prefix: fmt.Sprintf("%-7s| ", name), w: w}
}

type lineWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}
