package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and a parenthesis; utime 1234, stime 66.
	line := "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 66 0 0 20 0 8 0 555 1000 10 18446744073709551615"
	got, err := parseProcStat(line)
	if err != nil || got != 1300*clockTick {
		t.Errorf("parseProcStat = %v, %v; want %v", got, err, 1300*clockTick)
	}
	if _, err := parseProcStat("4242 nothing"); err == nil {
		t.Error("a line without a command name: no error")
	}
	m, st, err := parseMachineStat("cpu  100 5 50 9000 40 1 2 3 0 0")
	if err != nil || m != 158*clockTick || st != 3*clockTick {
		t.Errorf("parseMachineStat = %v, %v, %v; want %v used, %v stolen", m, st, err, 158*clockTick, 3*clockTick)
	}
}

func TestCostPerAccepted(t *testing.T) {
	before := CPUSample{Procs: map[string]time.Duration{"gateway": time.Second, "redis": 0}, Machine: 10 * time.Second}
	after := CPUSample{Procs: map[string]time.Duration{"gateway": 3 * time.Second, "redis": time.Second}, Machine: 14 * time.Second}
	c := Cost(before, after, 100_000)
	if c.MachinePerReq != 40 || len(c.Procs) != 3 || c.Procs[0].Name != "gateway" || c.Procs[0].MicrosPerReply != 20 ||
		c.Procs[2].Name != "other" || c.Procs[2].MicrosPerReply != 10 {
		t.Errorf("cost %+v", c)
	}
	if s := c.String(); s != "machine 40 µs/accepted = gateway 20 + redis 10 + other 10" {
		t.Errorf("String() = %q", s)
	}
	// Steal is counted apart, not in the machine's time nor in "other".
	before.Steal, after.Steal = time.Second, 2*time.Second
	c = Cost(before, after, 100_000)
	if c.MachinePerReq != 40 || c.Procs[2].MicrosPerReply != 10 || c.StealSeconds != 1 || c.StealShare != 0.2 {
		t.Errorf("cost with steal %+v", c)
	}
	if s := c.String(); s != "machine 40 µs/accepted = gateway 20 + redis 10 + other 10 (steal 20%)" {
		t.Errorf("String() with steal = %q", s)
	}
}

func TestCPUProbeReadsThisProcess(t *testing.T) {
	p := NewCPUProbe(map[string]int{"self": os.Getpid(), "none": 0})
	s := p.Sample()
	if _, ok := s.Procs["self"]; !ok || s.Machine <= 0 {
		t.Errorf("sample %+v: want this process and the machine", s)
	}
	if _, ok := s.Procs["none"]; ok {
		t.Error("pid 0 was probed")
	}
}
