package bench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// CPUProbe reads the CPU time of named processes and of the whole machine
// from /proc, so a phase can tell what each accepted request cost where.
type CPUProbe struct {
	pids map[string]int // name -> pid
}

// NewCPUProbe probes the named processes (pid 0 entries are skipped).
func NewCPUProbe(pids map[string]int) *CPUProbe {
	p := &CPUProbe{pids: map[string]int{}}
	for name, pid := range pids {
		if pid > 0 {
			p.pids[name] = pid
		}
	}
	return p
}

// CPUSample is the CPU time used so far by each probed process and by the
// machine (every core's time running something), and the time the
// hypervisor took from the machine's cores (steal).
type CPUSample struct {
	Procs   map[string]time.Duration
	Machine time.Duration
	Steal   time.Duration
}

// Sample reads the counters now; a process that is gone is left out.
func (p *CPUProbe) Sample() CPUSample {
	s := CPUSample{Procs: map[string]time.Duration{}}
	for name, pid := range p.pids {
		if d, err := processCPU(pid); err == nil {
			s.Procs[name] = d
		}
	}
	s.Machine, s.Steal, _ = machineCPU()
	return s
}

// ProcessCPU is one process' CPU time over a phase, and per accepted request.
type ProcessCPU struct {
	Name           string  `json:"name"`
	Seconds        float64 `json:"seconds"`
	MicrosPerReply float64 `json:"usPerAccepted"` // CPU µs per accepted request
}

// CPUCost is what a phase cost in CPU: per process (sorted by cost, the
// machine's rest as "other") and the machine in total, per accepted request.
// The time the hypervisor stole from the cores is not the machine's: it is
// counted apart, with its share of the cores' time (what ran plus what was
// stolen), so a phase can be told to have run on a busy host.
type CPUCost struct {
	Procs          []ProcessCPU `json:"procs"`
	MachineSeconds float64      `json:"machineSeconds"`
	MachinePerReq  float64      `json:"machineUsPerAccepted"`
	StealSeconds   float64      `json:"stealSeconds"`
	StealShare     float64      `json:"stealShare"` // steal / (machine + steal)
}

// Cost is the CPU spent between two samples, per accepted request.
func Cost(before, after CPUSample, accepted int64) CPUCost {
	per := func(d time.Duration) float64 {
		if accepted <= 0 {
			return 0
		}
		return float64(d.Microseconds()) / float64(accepted)
	}
	var c CPUCost
	var sum time.Duration
	for name, a := range after.Procs {
		b, ok := before.Procs[name]
		if !ok {
			continue
		}
		d := a - b
		sum += d
		c.Procs = append(c.Procs, ProcessCPU{Name: name, Seconds: d.Seconds(), MicrosPerReply: per(d)})
	}
	sort.Slice(c.Procs, func(i, j int) bool { return c.Procs[i].Seconds > c.Procs[j].Seconds })
	m := after.Machine - before.Machine
	if st := after.Steal - before.Steal; st > 0 {
		c.StealSeconds, c.StealShare = st.Seconds(), float64(st)/float64(max(m, 0)+st)
	}
	if m > 0 {
		c.MachineSeconds, c.MachinePerReq = m.Seconds(), per(m)
		if rest := m - sum; rest > 0 {
			c.Procs = append(c.Procs, ProcessCPU{Name: "other", Seconds: rest.Seconds(), MicrosPerReply: per(rest)})
		}
	}
	return c
}

// String is the cost on one line: "machine 126 µs = gateway 55 + kafka 18
// + ...", then the hypervisor's steal if it took any: "(steal 4%)".
func (c CPUCost) String() string {
	parts := make([]string, len(c.Procs))
	for i, p := range c.Procs {
		parts[i] = fmt.Sprintf("%s %.0f", p.Name, p.MicrosPerReply)
	}
	s := fmt.Sprintf("machine %.0f µs/accepted = %s", c.MachinePerReq, strings.Join(parts, " + "))
	if c.StealSeconds > 0 {
		s += fmt.Sprintf(" (steal %.0f%%)", 100*c.StealShare)
	}
	return s
}

// processCPU is user+system time of pid (all its threads) from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads utime and stime (fields 14 and 15) of a stat line;
// the command name (field 2) may hold spaces, so fields count from its ')'.
func parseProcStat(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name in %q", line)
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// machineCPU is the time every core ran something, and the time stolen
// from them, from /proc/stat's cpu line.
func machineCPU() (used, steal time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseMachineStat(line)
}

// parseMachineStat sums the cpu line's user, nice, system, irq and softirq
// (guest times are already in user and nice) and returns steal apart: the
// time the hypervisor ran something else on the cores is neither the
// machine's work nor idle.
func parseMachineStat(line string) (used, steal time.Duration, err error) {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("proc stat: unexpected first line %q", line)
	}
	var ticks, stolen int64
	for i, s := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("proc stat: %w", err)
		}
		if i == 7 {
			stolen = n
			continue
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, time.Duration(stolen) * clockTick, nil
}
