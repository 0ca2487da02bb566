package testenv

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy to one server for fault tests: once DropReplies is
// set, it goes on forwarding requests but drops every reply (the server
// acts, the client never hears so).
type Proxy struct {
	ln          net.Listener
	DropReplies atomic.Bool
}

// StartProxy listens on a free loopback port and forwards each connection
// to target until the test ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	px := &Proxy{ln: ln}
	var conns sync.Map
	tb.Cleanup(func() {
		_ = ln.Close()
		conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			conns.Store(c, nil)
			conns.Store(u, nil)
			go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 && !px.DropReplies.Load() {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				_ = c.Close()
			}()
		}
	}()
	return px
}

// Addr is the proxy's address.
func (px *Proxy) Addr() string { return px.ln.Addr().String() }
