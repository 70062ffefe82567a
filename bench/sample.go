package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sample is one interval of a run (Config.Every): what the clients did
// in it and the server's state at its end. A soak's samples show whether
// memory, goroutines, open files or latency drift over time.
type Sample struct {
	// At is the end of the interval, from the run's start.
	At time.Duration `json:"at_ns"`
	// Ops and Errors count the operations answered in the interval;
	// PerSec is Ops over the interval's length.
	Ops    int     `json:"ops"`
	Errors int     `json:"errors"`
	PerSec float64 `json:"ops_per_second"`
	// P50 and P99 are over every operation of the interval, in ms;
	// OpP99 is each operation's own p99.
	P50   float64            `json:"p50_ms"`
	P99   float64            `json:"p99_ms"`
	OpP99 map[string]float64 `json:"op_p99_ms"`
	// The server's state (0 when not measured): resident memory in
	// bytes, OS threads and open file descriptors from /proc/<pid>, its
	// CPU over the interval in ms per operation, and goroutines from its
	// metrics.
	RSS        int64   `json:"rss_bytes,omitempty"`
	Threads    int     `json:"threads,omitempty"`
	OpenFiles  int     `json:"open_files,omitempty"`
	CPUPerOp   float64 `json:"server_cpu_ms_per_op,omitempty"`
	Goroutines int     `json:"goroutines,omitempty"`
}

// recorder collects the clients' latencies for the whole run and for the
// current sample interval.
type recorder struct {
	mu       sync.Mutex
	lat      map[string][]time.Duration // the run
	errors   int
	errLog   []string
	interval map[string][]time.Duration // since the last sample
	intErrs  int
}

func newRecorder() *recorder {
	return &recorder{lat: map[string][]time.Duration{}, interval: map[string][]time.Duration{}}
}

func (r *recorder) add(op string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errors++
		r.intErrs++
		if len(r.errLog) < maxErrorSamples {
			r.errLog = append(r.errLog, err.Error())
		}
		return
	}
	r.lat[op] = append(r.lat[op], d)
	r.interval[op] = append(r.interval[op], d)
}

// takeInterval returns the interval's latencies and errors and starts the
// next interval.
func (r *recorder) takeInterval() (map[string][]time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat, errs := r.interval, r.intErrs
	r.interval, r.intErrs = map[string][]time.Duration{}, 0
	return lat, errs
}

// sampler takes a Sample at the end of each interval.
type sampler struct {
	cfg     Config
	rec     *recorder
	start   time.Time
	last    time.Time
	lastCPU time.Duration
	client  *http.Client
}

func (s *sampler) take(ctx context.Context, now time.Time) Sample {
	lat, errs := s.rec.takeInterval()
	smp := Sample{At: now.Sub(s.start).Round(time.Second), Errors: errs, OpP99: map[string]float64{}}
	var all []time.Duration
	for op, l := range lat {
		slices.Sort(l)
		smp.OpP99[op] = ms(pct(l, 99))
		all = append(all, l...)
	}
	slices.Sort(all)
	smp.Ops = len(all)
	smp.PerSec = float64(len(all)) / now.Sub(s.last).Seconds()
	smp.P50, smp.P99 = ms(pct(all, 50)), ms(pct(all, 99))
	s.last = now
	if pid := s.cfg.ServerPID; pid > 0 {
		if st, err := processState(pid); err == nil {
			smp.RSS, smp.Threads, smp.OpenFiles = st.rss, st.threads, st.files
		}
		if cpu, err := processCPU(pid); err == nil {
			if smp.Ops > 0 {
				smp.CPUPerOp = ms(cpu-s.lastCPU) / float64(smp.Ops)
			}
			s.lastCPU = cpu
		}
	}
	if s.cfg.MetricsURL != "" {
		if n, err := gauge(ctx, s.client, s.cfg.MetricsURL, "go_goroutines"); err == nil {
			smp.Goroutines = int(n)
		}
	}
	return smp
}

// Line is the sample as one line of a progress log.
func (smp Sample) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%8s %6.0f ops/s  p50 %6.2f ms  p99 %7.2f ms  errors %d", smp.At, smp.PerSec, smp.P50, smp.P99, smp.Errors)
	if smp.RSS > 0 {
		fmt.Fprintf(&b, "  rss %5.1f MiB  threads %d  files %d  cpu %.3f ms/op", float64(smp.RSS)/(1<<20), smp.Threads, smp.OpenFiles, smp.CPUPerOp)
	}
	if smp.Goroutines > 0 {
		fmt.Fprintf(&b, "  goroutines %d", smp.Goroutines)
	}
	return b.String()
}

type procState struct {
	rss     int64
	threads int
	files   int
}

// processState reads a process's resident memory and threads from
// /proc/<pid>/status and counts its open files in /proc/<pid>/fd.
func processState(pid int) (procState, error) {
	var st procState
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		switch k {
		case "VmRSS":
			st.rss = n << 10 // kB
		case "Threads":
			st.threads = int(n)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return st, err
	}
	st.files = len(fds)
	return st, sc.Err()
}

// gauge reads one unlabelled metric from a Prometheus text endpoint.
func gauge(ctx context.Context, c *http.Client, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			return strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}
