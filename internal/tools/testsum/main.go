// Command testsum reads `go test -json` on stdin and prints what a plain
// `go test` would (package ok/FAIL lines, the output of failed tests only),
// then one closing line "tests: N passed, N failed, N skipped". It exits 1
// when a test or a package failed (or the build did), else 0.
//
//	go test -json ./... | go run ./internal/tools/testsum
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

func main() {
	var passed, failed, skipped, pkgFailed int
	buf := map[string][]string{} // package/test -> output lines
	var failedTests []string
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Println(string(line)) // not JSON: pass it through
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch {
		case e.Action == "build-output":
			fmt.Print(e.Output)
		case e.Action == "build-fail":
			pkgFailed++
		case e.Test == "":
			switch e.Action {
			case "output":
				if o := strings.TrimSpace(e.Output); o == "PASS" || o == "FAIL" || strings.HasPrefix(o, "=== RUN") {
					continue
				}
				fmt.Print(e.Output)
			case "fail":
				pkgFailed++
			}
		case e.Action == "output":
			buf[key] = append(buf[key], e.Output)
		case e.Action == "pass":
			passed++
			delete(buf, key)
		case e.Action == "skip":
			skipped++
			delete(buf, key)
		case e.Action == "fail":
			failed++
			failedTests = append(failedTests, e.Package+" "+e.Test)
			fmt.Print(strings.Join(buf[key], ""))
			delete(buf, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testsum: read:", err)
		pkgFailed++
	}
	// Tests that never finished (a panic or timeout killed the binary).
	var unfinished []string
	for k, lines := range buf {
		if len(lines) > 0 {
			unfinished = append(unfinished, k)
		}
	}
	sort.Strings(unfinished)
	for _, k := range unfinished {
		fmt.Printf("--- unfinished %s\n%s", strings.ReplaceAll(k, "\x00", " "), strings.Join(buf[k], ""))
	}
	if len(failedTests) > 0 {
		fmt.Println("\nfailed tests:")
		for _, t := range failedTests {
			fmt.Println("  " + t)
		}
	}
	fmt.Printf("\ntests: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || pkgFailed > 0 {
		if failed == 0 {
			fmt.Printf("(%d package(s) failed outside any test: build error, panic or timeout)\n", pkgFailed)
		}
		os.Exit(1)
	}
}
