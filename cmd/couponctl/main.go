// Command couponctl is the operator tool: the local stack, migrations,
// replay, gate rebuild, reconciliation and the benchmark comparison.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand; each lives in its own file and registers itself
// from init().
type command struct {
	name  string
	usage string // one line for the command list
	run   func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

// errReported is returned by a command that has printed why it fails (its
// last line says so): couponctl exits 1 without adding a line.
var errReported = errors.New("failed (reported above)")

func register(name, usage string, run func(ctx context.Context, args []string) error) {
	if _, dup := commands[name]; dup {
		panic("couponctl: command registered twice: " + name)
	}
	commands[name] = command{name: name, usage: usage, run: run}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: couponctl <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-14s %s\n", n, commands[n].usage)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'couponctl <command> -h' for a command's flags.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "couponctl: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		if errors.Is(err, errReported) {
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "couponctl %s: %v\n", cmd.name, err)
		os.Exit(1)
	}
}
