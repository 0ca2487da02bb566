package proc

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/testenv"
)

// shell starts a /bin/sh child running script.
func shell(t *testing.T, name, script string, out *bytes.Buffer) *Child {
	t.Helper()
	c, err := Start(name, "/bin/sh", []string{"-c", script}, os.Environ(), out, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); <-c.Done() })
	return c
}

// TestStopOrderAndKill: Stop sends SIGTERM to the last started child
// first; one that exits on it is reported clean, one that ignores it is
// killed after the bound and reported as such.
func TestStopOrderAndKill(t *testing.T) {
	var out bytes.Buffer
	// Each child makes a file once its trap is set, so that SIGTERM finds it.
	dir := t.TempDir()
	stubborn := shell(t, "stubborn", `trap '' TERM; touch `+dir+`/stubborn; while :; do sleep 0.05; done`, &bytes.Buffer{})
	polite := shell(t, "polite", `trap 'exit 0' TERM; touch `+dir+`/polite; while :; do sleep 0.05; done`, &bytes.Buffer{})
	for _, name := range []string{"stubborn", "polite"} {
		testenv.Eventually(t, 10*time.Second, func() error {
			_, err := os.Stat(filepath.Join(dir, name))
			return err
		})
	}
	err := Group{stubborn, polite}.Stop(500*time.Millisecond, &out)
	if err == nil || !strings.Contains(err.Error(), "stubborn did not exit within 500ms after SIGTERM: killed") {
		t.Fatalf("Stop = %v, want the stubborn child killed", err)
	}
	if strings.Contains(err.Error(), "polite") || out.String() != "polite stopped cleanly\n" {
		t.Fatalf("Stop = %v, said %q; want polite stopped cleanly", err, out.String())
	}
	for _, c := range []*Child{stubborn, polite} {
		select {
		case <-c.Done():
		default:
			t.Fatalf("%s still running after Stop", c.Name)
		}
	}
}

// TestExitedAndWaitReady: the first child to exit is delivered with its
// status, and WaitReady gives up as soon as a child has exited.
func TestExitedAndWaitReady(t *testing.T) {
	long := shell(t, "long", `exec sleep 30`, &bytes.Buffer{})
	short := shell(t, "short", `exit 3`, &bytes.Buffer{})
	g := Group{long, short}
	c := <-g.Exited()
	if c != short || c.Err() == nil || !strings.Contains(c.Err().Error(), "exit status 3") {
		t.Fatalf("first exit %s: %v, want short with exit status 3", c.Name, c.Err())
	}
	addr, err := FreeAddr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	err = g.WaitReady(context.Background(), "http://"+addr+"/readyz", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "short exited") {
		t.Fatalf("WaitReady = %v, want it to name the exited child", err)
	}
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	go func() { _ = srv.ListenAndServe() }()
	defer srv.Close()
	if err := (Group{long}).WaitReady(context.Background(), "http://"+addr+"/readyz", time.Minute); err != nil {
		t.Fatalf("WaitReady on a listening server: %v", err)
	}
}

// TestPrefixWriter: whole lines only, each prefixed; a partial line waits
// for its end.
func TestPrefixWriter(t *testing.T) {
	var out bytes.Buffer
	w := PrefixWriter("sinker", &out)
	_, _ = w.Write([]byte("one\ntw"))
	_, _ = w.Write([]byte("o\n"))
	if got, want := out.String(), "sinker | one\nsinker | two\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
