// Command example-service-go is the benchmark peer: the lab's service written in Go
// from docs/contract.md, so that example-service can be measured against the language the lab
// used, side by side in one run on the same machine (see bench/README.md).
//
// It keeps the contract that costs time on the request and scrape paths: the naive
// recursive Fibonacci on GET /abc, the lab's four metric families with a latency
// observation per request, sysfs read at scrape time, and Go's process and runtime
// collectors on the same /metrics page. It is a measuring instrument, not a second
// product: no flags, only environment variables, and it binds loopback by default.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	defaultNum    = 10
	defaultNumMax = 32
	replyWithNum  = "there is env NUM. Computation succeeded\n"
	replyNoNum    = "there is no env NUM. Computation succeeded\n"
	textPlain     = "text/plain; charset=utf-8"
)

// The lab's buckets, exactly as docs/contract.md lists them.
var latencyBuckets = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300}

// sink keeps each Fibonacci result observable so no compiler may drop the work.
var sink atomic.Int64

func fib(n int) int {
	if n <= 2 {
		return 1
	}
	return fib(n-1) + fib(n-2)
}

type config struct {
	host      string
	port      int
	num       int
	numSet    bool
	sysfsRoot string
}

// fail reports one invalid setting the way example-service does: one line, status 2.
func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "example-service-go: "+format+"\n", args...)
	os.Exit(2)
}

func intFromEnv(name string, def, lo, hi int) int {
	raw, ok := os.LookupEnv(name)
	if !ok || raw == "" {
		return def
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < lo || v > hi {
		fail("%s=%q is invalid: expected an integer from %d to %d", name, raw, lo, hi)
	}
	return v
}

func loadConfig() config {
	c := config{host: "127.0.0.1", sysfsRoot: "/sys"}
	if h := os.Getenv("HOST"); h != "" {
		c.host = h
	}
	if r := os.Getenv("SYSFS_ROOT"); r != "" {
		c.sysfsRoot = r
	}
	c.port = intFromEnv("PORT", 5565, 1, 65535)
	numMax := intFromEnv("NUM_MAX", defaultNumMax, 1, 92)
	// As the lab's Go service did, an empty NUM counts as unset.
	if raw := os.Getenv("NUM"); raw != "" {
		c.num = intFromEnv("NUM", defaultNum, 1, numMax)
		c.numSet = true
	} else {
		c.num = defaultNum
	}
	return c
}

// readings exposes the two lab families that come from the machine. They are read at
// scrape time, as example-service does, so the scrape path costs the same kind of work;
// a value that cannot be read is left out rather than made up.
type readings struct {
	root        string
	temperature *prometheus.Desc
	diskErrors  *prometheus.Desc
}

func newReadings(root string) *readings {
	return &readings{
		root: root,
		temperature: prometheus.NewDesc("cpu_temperature_celsius",
			"Current temperature of the CPU.", nil, nil),
		diskErrors: prometheus.NewDesc("hd_errors_total",
			"Number of hard-disk errors.", []string{"device"}, nil),
	}
}

func (r *readings) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.temperature
	ch <- r.diskErrors
}

func (r *readings) Collect(ch chan<- prometheus.Metric) {
	if t, ok := cpuTemperature(r.root); ok {
		ch <- prometheus.MustNewConstMetric(r.temperature, prometheus.GaugeValue, t)
	}
	for device, n := range diskErrors(r.root) {
		ch <- prometheus.MustNewConstMetric(r.diskErrors, prometheus.CounterValue, n, device)
	}
}

func readTrimmed(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func readMillidegrees(path string) (float64, bool) {
	s, ok := readTrimmed(path)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return v / 1000, true
}

// CPU package sensors by hwmon driver, with the label that names the package reading.
var cpuHwmon = map[string]string{"coretemp": "Package id 0", "k10temp": "Tctl", "zenpower": "Tdie"}

func cpuTemperature(root string) (float64, bool) {
	hwmons, _ := filepath.Glob(filepath.Join(root, "class/hwmon/hwmon*"))
	for _, dir := range hwmons {
		name, ok := readTrimmed(filepath.Join(dir, "name"))
		if !ok {
			continue
		}
		want, isCPU := cpuHwmon[name]
		if !isCPU {
			continue
		}
		labels, _ := filepath.Glob(filepath.Join(dir, "temp*_label"))
		for _, lf := range labels {
			if l, ok := readTrimmed(lf); ok && l == want {
				input := strings.TrimSuffix(lf, "_label") + "_input"
				if t, ok := readMillidegrees(input); ok {
					return t, true
				}
			}
		}
		if t, ok := readMillidegrees(filepath.Join(dir, "temp1_input")); ok {
			return t, true
		}
	}
	zones, _ := filepath.Glob(filepath.Join(root, "class/thermal/thermal_zone*"))
	for _, dir := range zones {
		kind, ok := readTrimmed(filepath.Join(dir, "type"))
		if !ok || !(kind == "x86_pkg_temp" || strings.Contains(kind, "cpu")) {
			continue
		}
		if t, ok := readMillidegrees(filepath.Join(dir, "temp")); ok {
			return t, true
		}
	}
	return 0, false
}

// diskErrors reads the SCSI layer's I/O error count (hex, e.g. 0x3) for every block
// device that has one; virtio and NVMe disks have none and are left out.
func diskErrors(root string) map[string]float64 {
	out := map[string]float64{}
	counts, _ := filepath.Glob(filepath.Join(root, "block/*/device/ioerr_cnt"))
	for _, path := range counts {
		s, ok := readTrimmed(path)
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			continue
		}
		device := filepath.Base(filepath.Dir(filepath.Dir(path)))
		out["/dev/"+device] = float64(v)
	}
	return out
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", textPlain)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// only wraps a handler so that other methods get 405, as the contract asks; HEAD is
// answered as GET without a body (net/http drops the body itself).
func only(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			plain(w, http.StatusMethodNotAllowed, "method not allowed\n")
			return
		}
		h(w, r)
	}
}

func newHandler(c config) http.Handler {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "request_total",
		Help: "Number of request processed by this service.",
	})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "request_latency_seconds",
		Help:    "Time spent in this service.",
		Buckets: latencyBuckets,
	})
	reg.MustRegister(
		requests,
		latency,
		newReadings(c.sysfsRoot),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	reply := replyNoNum
	if c.numSet {
		reply = replyWithNum
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})

	routes := map[string]http.HandlerFunc{
		"/abc": only(func(w http.ResponseWriter, _ *http.Request) {
			start := time.Now()
			sink.Store(int64(fib(c.num)))
			plain(w, http.StatusOK, reply)
			latency.Observe(time.Since(start).Seconds())
			requests.Inc()
		}),
		"/metrics": only(metrics.ServeHTTP),
		"/healthz": only(func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ok\n") }),
		"/readyz":  only(func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ready\n") }),
	}
	// An exact-match table rather than ServeMux: ServeMux redirects and matches
	// prefixes, and the contract wants a plain 404 for anything else.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := routes[r.URL.Path]; ok {
			h(w, r)
			return
		}
		plain(w, http.StatusNotFound, "not found\n")
	})
}

func main() {
	c := loadConfig()
	srv := &http.Server{
		Addr:              net.JoinHostPort(c.host, strconv.Itoa(c.port)),
		Handler:           newHandler(c),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "example-service-go: cannot listen on %s: %v\n", srv.Addr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "example-service-go: serving on http://%s num=%d num_set=%t\n",
		srv.Addr, c.num, c.numSet)

	stop := make(chan os.Signal, 1)
	drained := make(chan struct{})
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		defer close(drained)
		<-stop
		// A second signal exits at once, as example-service does.
		signal.Reset(syscall.SIGTERM, syscall.SIGINT)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "example-service-go: %v\n", err)
		os.Exit(1)
	}
	// Serve returns as soon as Shutdown starts; in-flight requests finish first.
	<-drained
}
