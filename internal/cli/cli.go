// Package cli binds configuration fields to flags whose defaults come from
// COUPON_* environment variables, so every binary reads config the same way.
package cli

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Var describes one configuration variable, for --help and the README table.
type Var struct {
	Flag, Env, Default, Usage string
	Secret                    bool
}

// FlagSet wraps flag.FlagSet and records each variable it binds.
type FlagSet struct {
	*flag.FlagSet
	Vars []Var
	// NoDefault is what an empty default of a connection setting means,
	// shown in its usage (couponctl: "the stack's").
	NoDefault string
	errs      []error
	parsed    []func() // run after a successful Parse (ListVar)
}

// New returns a FlagSet that reports errors instead of exiting.
func New(name string) *FlagSet {
	return &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
}

func (fs *FlagSet) lookup(env, def string) string {
	if v, ok := os.LookupEnv(env); ok {
		return v
	}
	return def
}

func (fs *FlagSet) record(name, env, def, usage string, secret bool) string {
	fs.Vars = append(fs.Vars, Var{Flag: name, Env: env, Default: def, Usage: usage, Secret: secret})
	return fmt.Sprintf("%s (env %s)", usage, env)
}

// StringVar binds p to --name, defaulting to $env or def.
func (fs *FlagSet) StringVar(p *string, name, env, def, usage string) {
	fs.FlagSet.StringVar(p, name, fs.lookup(env, def), fs.record(name, env, def, usage, false))
}

// SecretVar is StringVar for a value that must never be shown: the usage
// text (-h, a mistyped flag) and Redacted show it as "[redacted]".
func (fs *FlagSet) SecretVar(p *string, name, env, def, usage string) {
	fs.FlagSet.StringVar(p, name, fs.lookup(env, def), fs.record(name, env, def, usage, true))
	f := fs.FlagSet.Lookup(name)
	f.DefValue = redact(f.DefValue) // what PrintDefaults shows as the default
}

// redact is how a secret's value is shown anywhere: "[redacted]", or ""
// when unset.
func redact(val string) string {
	if val == "" {
		return ""
	}
	return "[redacted]"
}

// IntVar binds p to --name, defaulting to $env or def.
func (fs *FlagSet) IntVar(p *int, name, env string, def int, usage string) {
	v := def
	if s := fs.lookup(env, ""); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("%s=%q: not an integer", env, s))
		}
		v = n
	}
	fs.FlagSet.IntVar(p, name, v, fs.record(name, env, strconv.Itoa(def), usage, false))
}

// DurationVar binds p to --name, defaulting to $env or def.
func (fs *FlagSet) DurationVar(p *time.Duration, name, env string, def time.Duration, usage string) {
	v := def
	if s := fs.lookup(env, ""); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("%s=%q: not a duration (like 500ms or 2s)", env, s))
		}
		v = d
	}
	fs.FlagSet.DurationVar(p, name, v, fs.record(name, env, def.String(), usage, false))
}

// BoolVar binds p to --name, defaulting to $env or def.
func (fs *FlagSet) BoolVar(p *bool, name, env string, def bool, usage string) {
	v := def
	if s := fs.lookup(env, ""); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("%s=%q: not a boolean", env, s))
		}
		v = b
	}
	fs.FlagSet.BoolVar(p, name, v, fs.record(name, env, strconv.FormatBool(def), usage, false))
}

// ListVar binds p to --name, a comma-separated list, defaulting to $env
// or def. The flag shows and takes the list as one string; p gets its
// items (List) once Parse succeeds.
func (fs *FlagSet) ListVar(p *[]string, name, env string, def []string, usage string) {
	s := new(string)
	fs.StringVar(s, name, env, strings.Join(def, ","), usage)
	fs.parsed = append(fs.parsed, func() { *p = List(*s) })
}

// Parse parses args after the environment; bad environment values are errors too.
func (fs *FlagSet) Parse(args []string) error {
	if len(fs.errs) > 0 {
		return fs.errs[0]
	}
	if err := fs.FlagSet.Parse(args); err != nil {
		return err
	}
	for _, f := range fs.parsed {
		f()
	}
	return nil
}

// List splits a comma-separated list, dropping blanks.
func List(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Redacted returns the effective values as key/value pairs for logging,
// with secrets redacted as in the usage text.
func (fs *FlagSet) Redacted() []any {
	var kv []any
	for _, v := range fs.Vars {
		val := fs.Lookup(v.Flag).Value.String()
		if v.Secret {
			val = redact(val)
		}
		kv = append(kv, v.Flag, val)
	}
	return kv
}
