package main

import (
	"bufio"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// wrkOK is real wrk 4.1.0 output (--latency) with every response a 2xx.
const wrkOK = `Running 1s test @ http://127.0.0.1:18777/index.html
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.06ms    1.28ms  17.07ms   95.98%
    Req/Sec     2.14k   157.52     2.37k    72.73%
  Latency Distribution
     50%  848.00us
     75%    1.09ms
     90%    1.41ms
     99%    6.80ms
  2342 requests in 1.10s, 427.87KB read
Requests/sec:   2129.21
Transfer/sec:    388.99KB
`

// wrkErrors is real wrk output with 4xx responses, plus socket errors and latencies in seconds.
const wrkErrors = `Running 1s test @ http://127.0.0.1:18777/missing
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.97ms  848.75us   8.09ms   91.83%
    Req/Sec     2.29k   462.40     3.25k    60.00%
  Latency Distribution
     50%    1.50s 
     75%    1.60s
     90%    1.70s
     99%    1.05m
  2282 requests in 1.00s, 1.13MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 2282
Requests/sec:   2281.28
Transfer/sec:      1.13MB
`

var parseWrkCases = []struct {
	name    string
	out     string
	want    wrkResult
	wantErr string // substring of the error; "" for success
}{
	{"ok", wrkOK, wrkResult{RequestsPerSec: 2129.21, P50: 848 * time.Microsecond, P99: 6800 * time.Microsecond, Requests: 2342}, ""},
	{"errors and big units", wrkErrors, wrkResult{RequestsPerSec: 2281.28, P50: 1500 * time.Millisecond, P99: 63 * time.Second, Requests: 2282, Non2xx: 2282, SocketErrors: 10}, ""},
	{"no latency distribution", strings.Replace(wrkOK, "     50%  848.00us\n", "", 1), wrkResult{}, "no 50% and 99% latency lines"},
	{"no requests per second", strings.Replace(wrkOK, "Requests/sec:   2129.21\n", "", 1), wrkResult{}, `no "Requests/sec:" line`},
	{"no request count", strings.Replace(wrkOK, "  2342 requests in", "  lots of requests in", 1), wrkResult{}, `no "N requests in" line`},
	{"unknown latency unit", strings.Replace(wrkOK, "6.80ms", "6.80ns", 1), wrkResult{}, "no 50% and 99% latency lines"},
	{"huge latency", strings.Replace(wrkOK, "6.80ms", "99999999999999999999h", 1), wrkResult{}, "latency 99%: 99999999999999999999h is out of range"},
	{"empty", "", wrkResult{}, `no "Requests/sec:" line`},
	{"connection refused", "unable to connect to 127.0.0.1:1 Connection refused\n", wrkResult{}, `no "Requests/sec:" line`},
}

func TestParseWrk(t *testing.T) {
	for _, tc := range parseWrkCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWrk(tc.out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseWrk(f *testing.F) {
	for _, tc := range parseWrkCases {
		f.Add(tc.out)
	}
	f.Fuzz(func(t *testing.T, out string) {
		w, err := parseWrk(out)
		if err != nil {
			return
		}
		if w.RequestsPerSec < 0 || w.P50 < 0 || w.P99 < 0 || w.Requests < 0 || w.Non2xx < 0 || w.SocketErrors < 0 {
			t.Fatalf("negative value from %q: %+v", out, w)
		}
	})
}

func TestParseWrkLatency(t *testing.T) {
	for _, tc := range []struct {
		num, unit string
		want      time.Duration
		wantErr   string
	}{
		{"420.00", "us", 420 * time.Microsecond, ""},
		{"1.23", "ms", 1230 * time.Microsecond, ""},
		{"2.00", "s", 2 * time.Second, ""},
		{"1.50", "m", 90 * time.Second, ""},
		{"1", "h", time.Hour, ""},
		{"1", "ns", 0, `unknown unit "ns"`},
		{"x", "ms", 0, `bad number "x"`},
		{"-1", "ms", 0, `bad number "-1"`},
	} {
		got, err := parseWrkLatency(tc.num, tc.unit)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s%s: err = %v, want %q", tc.num, tc.unit, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s%s = %v, %v; want %v", tc.num, tc.unit, got, err, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// loginPage is the shape of idp/templates/login.html as served.
const loginPage = `<form method="post" action="/login" autocomplete="on">
<input type="hidden" name="authRequestID" value="ar_1&#43;2">
<input type="hidden" name="csrf_token" value="tok&amp;en">
<input type="text" id="username" name="username" value="" autocomplete="username" required autofocus>
<input type="password" id="password" name="password" autocomplete="current-password" required>
</form>`

var formInputsCases = []struct {
	name string
	html string
	want map[string]string
}{
	{"login form", loginPage, map[string]string{"authRequestID": "ar_1+2", "csrf_token": "tok&en", "username": "", "password": ""}},
	{"no inputs", "<p>hello</p>", map[string]string{}},
	{"unnamed input", `<input value="x">`, map[string]string{}},
	{"upper case", `<INPUT NAME="a" VALUE="b">`, map[string]string{"a": "b"}},
}

func TestFormInputs(t *testing.T) {
	for _, tc := range formInputsCases {
		t.Run(tc.name, func(t *testing.T) {
			got := formInputs(tc.html)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if vs, ok := got[k]; !ok || vs[0] != v {
					t.Errorf("%s = %q, want %q", k, vs, v)
				}
			}
		})
	}
}

func FuzzFormInputs(f *testing.F) {
	for _, tc := range formInputsCases {
		f.Add(tc.html)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name := range formInputs(s) {
			if name == "" {
				t.Fatalf("empty input name from %q", s)
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	ok := config{Duration: 10 * time.Second, Warmup: 2 * time.Second, Rounds: 3, Connections: 32, Threads: 2, Target: 0.9, Redis: true, RedisTarget: 0.85}
	if err := ok.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name    string
		mod     func(*config)
		wantErr string
	}{
		{"short duration", func(c *config) { c.Duration = 500 * time.Millisecond }, "-duration 500ms"},
		{"short warm-up", func(c *config) { c.Warmup = time.Millisecond }, "-warmup 1ms"},
		{"no warm-up", func(c *config) { c.Warmup = 0 }, ""},
		{"no rounds", func(c *config) { c.Rounds = 0 }, "-rounds 0"},
		{"no threads", func(c *config) { c.Threads = 0 }, "-threads 0"},
		{"fewer connections than threads", func(c *config) { c.Connections = 1 }, "-connections 1"},
		{"zero target", func(c *config) { c.Target = 0 }, "-target 0"},
		{"redis, zero redis target", func(c *config) { c.Redis, c.RedisTarget = true, 0 }, "-redis-target 0"},
		{"redis, NaN redis target", func(c *config) { c.Redis, c.RedisTarget = true, math.NaN() }, "-redis-target NaN"},
		{"no redis, zero redis target", func(c *config) { c.Redis, c.RedisTarget = false, 0 }, ""},
	} {
		c := ok
		tc.mod(&c)
		err := c.validate()
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestWrkSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Second: "1s", 10 * time.Second: "10s", 1500 * time.Millisecond: "2s", time.Minute: "60s"} {
		if got := wrkSeconds(d); got != want {
			t.Errorf("wrkSeconds(%s) = %s, want %s", d, got, want)
		}
	}
}

// meas is a measurement with the given req/s, latencies and socket errors.
func meas(rps float64, p50, p99 time.Duration, sockErr int64) measurement {
	return measurement{wrkResult: wrkResult{RequestsPerSec: rps, P50: p50, P99: p99, Requests: 100, SocketErrors: sockErr}, BackendHits: 100}
}

// mkRound builds a round from req/s of bare, gate and (if redis > 0) gate (redis).
func mkRound(i int, bare, gate, redis float64) round {
	rd := round{Round: i}
	rd.set(keyBare, meas(bare, time.Millisecond, 5*time.Millisecond, 0))
	rd.set(keyGate, meas(gate, 2*time.Millisecond, 6*time.Millisecond, 0))
	if redis > 0 {
		rd.set(keyGateRedis, meas(redis, 3*time.Millisecond, 9*time.Millisecond, 0))
	}
	rd.setRatios()
	return rd
}

func TestNoise(t *testing.T) {
	sock := func(rd round, key string, n int64) round {
		switch key {
		case keyBare:
			rd.Bare.SocketErrors = n
		case keyGate:
			rd.Gate.SocketErrors = n
		case keyGateRedis:
			rd.GateRedis.SocketErrors = n
		}
		return rd
	}
	for _, tc := range []struct {
		name   string
		load   string
		rounds []round
		want   []string // substrings, one per warning, in order
	}{
		{"quiet", "0.50 1.00 1.00", []round{mkRound(1, 100, 90, 85), mkRound(2, 100, 95, 88), mkRound(3, 100, 85, 80)}, nil},
		{"no load average", "", []round{mkRound(1, 100, 90, 0)}, nil},
		{"busy", "2.50 1.00 1.00", []round{mkRound(1, 100, 90, 0)}, []string{"busy before the run (1-minute load 2.50 on 2 CPUs)"}},
		{"bolt rounds disagree", "0.10 0 0", []round{mkRound(1, 100, 75, 85), mkRound(2, 100, 110, 86)}, []string{"gate (bolt)/bare (ratios 0.750 to 1.100)"}},
		{"redis rounds disagree", "0.10 0 0", []round{mkRound(1, 100, 90, 60), mkRound(2, 100, 90, 80)}, []string{"gate (redis)/bare (ratios 0.600 to 0.800)"}},
		{"both disagree", "0.10 0 0", []round{mkRound(1, 100, 70, 60), mkRound(2, 100, 90, 80)}, []string{"gate (bolt)/bare", "gate (redis)/bare"}},
		{"one round cannot disagree", "0.10 0 0", []round{mkRound(1, 100, 10, 5)}, nil},
		{"socket errors, every target counted", "0.10 0 0", []round{sock(mkRound(1, 100, 90, 85), keyBare, 3), sock(sock(mkRound(2, 100, 90, 85), keyGate, 4), keyGateRedis, 5)}, []string{"12 socket errors"}},
		{"busy, disagreeing, socket errors", "9 0 0", []round{sock(mkRound(1, 100, 50, 0), keyGate, 1), mkRound(2, 100, 90, 0)}, []string{"busy", "ratios 0.500 to 0.900", "1 socket errors"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := result{CPUs: 2, LoadAvgBefore: tc.load, Rounds: tc.rounds}
			got := r.noise()
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestRoundOrder(t *testing.T) {
	for _, tc := range []struct {
		i, n int
		want []int
	}{
		{1, 2, []int{0, 1}},
		{2, 2, []int{1, 0}},
		{3, 2, []int{0, 1}},
		{1, 3, []int{0, 1, 2}},
		{2, 3, []int{1, 2, 0}},
		{3, 3, []int{2, 0, 1}},
		{4, 3, []int{0, 1, 2}},
	} {
		got := roundOrder(tc.i, tc.n)
		if !slicesEqual(got, tc.want) {
			t.Errorf("roundOrder(%d, %d) = %v, want %v", tc.i, tc.n, got, tc.want)
		}
	}
	// Over n rounds every target takes every position once.
	for n := 1; n <= 4; n++ {
		seen := map[[2]int]bool{}
		for i := 1; i <= n; i++ {
			for pos, ti := range roundOrder(i, n) {
				seen[[2]int{pos, ti}] = true
			}
		}
		if len(seen) != n*n {
			t.Errorf("n=%d: %d of %d (position, target) pairs in %d rounds", n, len(seen), n*n, n)
		}
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSummarize(t *testing.T) {
	cfg := config{Target: 0.9, Redis: true, RedisTarget: 0.85}
	for _, tc := range []struct {
		name                 string
		cfg                  config
		rounds               []round
		wantRatio, wantRedis float64
		wantMeets            bool
		wantMeetsRedis       *bool // nil: no Redis summary
		wantVerdict          string
		wantVerdictRedis     string
	}{
		{
			name:   "both meet",
			cfg:    cfg,
			rounds: []round{mkRound(1, 100, 95, 90), mkRound(2, 200, 180, 172), mkRound(3, 100, 91, 88)},
			// ratios bolt 0.95, 0.90, 0.91; redis 0.90, 0.86, 0.88
			wantRatio: 0.91, wantRedis: 0.88, wantMeets: true, wantMeetsRedis: ptr(true),
			wantVerdict: "OK: the gate (bolt) serves 0.910", wantVerdictRedis: "OK: the gate (redis) serves 0.880 of bare Caddy's req/s (target 0.85)",
		},
		{
			name:      "redis below",
			cfg:       cfg,
			rounds:    []round{mkRound(1, 100, 92, 50), mkRound(2, 100, 94, 60)},
			wantRatio: 0.93, wantRedis: 0.55, wantMeets: true, wantMeetsRedis: ptr(false),
			wantVerdict: "OK: the gate (bolt)", wantVerdictRedis: "BELOW TARGET: the gate (redis) serves 0.550",
		},
		{
			name:      "bolt below, redis meets",
			cfg:       cfg,
			rounds:    []round{mkRound(1, 100, 80, 86)},
			wantRatio: 0.8, wantRedis: 0.86, wantMeets: false, wantMeetsRedis: ptr(true),
			wantVerdict: "BELOW TARGET: the gate (bolt) serves 0.800 of bare Caddy's req/s (target 0.90)", wantVerdictRedis: "OK: the gate (redis)",
		},
		{
			name:      "without redis",
			cfg:       config{Target: 0.9},
			rounds:    []round{mkRound(1, 100, 96, 0), mkRound(2, 100, 86, 0)},
			wantRatio: 0.91, wantMeets: true,
			wantVerdict: "OK: the gate (bolt) serves 0.910",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := result{Config: tc.cfg, Rounds: tc.rounds}
			r.summarize()
			if math.Abs(r.Ratio-tc.wantRatio) > 1e-9 || r.Meets != tc.wantMeets {
				t.Errorf("ratio %v meets %v, want %v %v", r.Ratio, r.Meets, tc.wantRatio, tc.wantMeets)
			}
			if !strings.HasPrefix(r.Verdict, tc.wantVerdict) {
				t.Errorf("verdict %q, want it to start with %q", r.Verdict, tc.wantVerdict)
			}
			if tc.wantMeetsRedis == nil {
				if r.GateRedis != nil || r.MeetsRedis != nil || r.RatioRedis != 0 || r.VerdictRedis != "" {
					t.Errorf("Redis summary without Redis: %+v %v %v %q", r.GateRedis, r.MeetsRedis, r.RatioRedis, r.VerdictRedis)
				}
				return
			}
			if r.GateRedis == nil || r.MeetsRedis == nil {
				t.Fatalf("no Redis summary: %+v", r)
			}
			if math.Abs(r.RatioRedis-tc.wantRedis) > 1e-9 || *r.MeetsRedis != *tc.wantMeetsRedis {
				t.Errorf("redis ratio %v meets %v, want %v %v", r.RatioRedis, *r.MeetsRedis, tc.wantRedis, *tc.wantMeetsRedis)
			}
			if !strings.HasPrefix(r.VerdictRedis, tc.wantVerdictRedis) {
				t.Errorf("redis verdict %q, want it to start with %q", r.VerdictRedis, tc.wantVerdictRedis)
			}
			if r.GateRedis.P50 != 3*time.Millisecond || r.GateRedis.P99us != 9000 {
				t.Errorf("redis latencies %v / %vus, want 3ms / 9000us", r.GateRedis.P50, r.GateRedis.P99us)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSummarizeMedians(t *testing.T) {
	r := result{Config: config{Target: 0.9, Redis: true, RedisTarget: 0.85}}
	for i, v := range []struct{ bare, gate, redis float64 }{{100, 90, 80}, {300, 270, 240}, {200, 190, 170}} {
		rd := round{Round: i + 1}
		rd.set(keyBare, meas(v.bare, time.Duration(i+1)*time.Millisecond, 10*time.Millisecond, 0))
		rd.set(keyGate, meas(v.gate, time.Duration(i+2)*time.Millisecond, 11*time.Millisecond, 0))
		rd.set(keyGateRedis, meas(v.redis, time.Duration(3-i)*time.Millisecond, time.Duration(20+i)*time.Millisecond, 0))
		rd.setRatios()
		r.Rounds = append(r.Rounds, rd)
	}
	r.summarize()
	if r.Bare.RequestsPerSec != 200 || r.Gate.RequestsPerSec != 190 || r.GateRedis.RequestsPerSec != 170 {
		t.Errorf("median req/s %v %v %v, want 200 190 170", r.Bare.RequestsPerSec, r.Gate.RequestsPerSec, r.GateRedis.RequestsPerSec)
	}
	if r.Bare.P50 != 2*time.Millisecond || r.Gate.P50 != 3*time.Millisecond || r.GateRedis.P50 != 2*time.Millisecond || r.GateRedis.P99 != 21*time.Millisecond {
		t.Errorf("median latencies bare %v gate %v redis %v/%v", r.Bare.P50, r.Gate.P50, r.GateRedis.P50, r.GateRedis.P99)
	}
	// The ratio is the median of the rounds' ratios (0.9, 0.9, 0.95), not of the medians.
	if math.Abs(r.Ratio-0.9) > 1e-9 || math.Abs(r.RatioRedis-0.8) > 1e-9 {
		t.Errorf("ratios %v %v, want 0.9 0.8", r.Ratio, r.RatioRedis)
	}
}

func TestRoundSet(t *testing.T) {
	rd := mkRound(1, 200, 150, 100)
	if rd.Ratio != 0.75 || rd.RatioRedis != 0.5 {
		t.Errorf("ratios %v %v, want 0.75 0.5", rd.Ratio, rd.RatioRedis)
	}
	var labels []string
	for _, x := range rd.measurements() {
		labels = append(labels, x.label)
	}
	if got := strings.Join(labels, ","); got != "bare,gate (bolt),gate (redis)" {
		t.Errorf("labels %s", got)
	}
	if got := orderLabels([]string{keyGateRedis, keyBare, keyGate}); got != "gate (redis), bare, gate (bolt)" {
		t.Errorf("orderLabels = %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("set with an unknown key did not panic")
		}
	}()
	rd.set("nope", measurement{})
}

// TestResultJSON pins the JSON shape: the Redis target and its ratio when it ran, nothing of
// it otherwise, and meets_target_redis present even when false.
func TestResultJSON(t *testing.T) {
	withRedis := result{Config: config{Duration: 10 * time.Second, Warmup: 2 * time.Second, Target: 0.9, Redis: true, RedisTarget: 0.85}, Redis: "7.0.15",
		Rounds: []round{mkRound(1, 100, 95, 50)}}
	withRedis.summarize()
	without := result{Config: config{Duration: 10 * time.Second, Target: 0.9, RedisTarget: 0.85}, Rounds: []round{mkRound(1, 100, 95, 0)}}
	without.summarize()
	for _, tc := range []struct {
		name          string
		r             result
		want, wantNot []string
	}{
		{"with redis", withRedis,
			[]string{`"redis":"7.0.15"`, `"gate_redis":{"requests_per_sec":50,"p50_us":3000,"p99_us":9000}`, `"ratio_redis":0.5`, `"meets_target_redis":false`,
				`"verdict_redis":"BELOW TARGET: the gate (redis)`, `"target_ratio_redis":0.85`, `"redis":true`, `"ratio":0.95`, `"meets_target":true`,
				`"gate_redis":{"requests_per_sec":50,"p50_us":3000,"p99_us":9000,"requests":100,"non_2xx":0,"socket_errors":0,"backend_hits":100}`},
			nil},
		{"without redis", without,
			[]string{`"redis":false`, `"ratio":0.95`, `"gate":{`},
			[]string{"gate_redis", "ratio_redis", "meets_target_redis", "verdict_redis", "target_ratio_redis", `"redis":"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("JSON lacks %s:\n%s", w, b)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(string(b), w) {
					t.Errorf("JSON has %s:\n%s", w, b)
				}
			}
		})
	}
}

func TestMakeCaddyfile(t *testing.T) {
	bolt := makeCaddyfile(siteConfig{Dir: "/d", Storage: "bolt /d/zonegate.db", IdP: 1001, Bare: 1002, Gate: 1003, Backend: 1004})
	redis := makeCaddyfile(siteConfig{Dir: "/r", Storage: "redis redis://127.0.0.1:6390", IdP: 2001, Gate: 2003, Backend: 1004, Admin: 2009})
	for _, tc := range []struct {
		name          string
		got           string
		want, wantNot []string
	}{
		{"bolt with bare", bolt,
			[]string{"\tadmin off\n", "storage bolt /d/zonegate.db\n", "users /d/users.yaml\n", "issuer http://localhost:1001\n",
				"http://localhost:1002 {\n\treverse_proxy 127.0.0.1:1004\n}", "http://localhost:1003 {\n\tzonegate_gate bench {\n\t\turl http://localhost:1003\n",
				"group admins", "zone lab 127.0.0.0/8 ::1"},
			[]string{"redis"}},
		{"redis without bare", redis,
			[]string{"\tadmin 127.0.0.1:2009\n", "storage redis redis://127.0.0.1:6390\n", "users /r/users.yaml\n", "http://localhost:2003 {\n\tzonegate_gate bench",
				"reverse_proxy 127.0.0.1:1004"},
			[]string{"http://localhost:0", "admin off", "bolt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.got, w) {
					t.Errorf("Caddyfile lacks %q:\n%s", w, tc.got)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(tc.got, w) {
					t.Errorf("Caddyfile has %q:\n%s", w, tc.got)
				}
			}
			if strings.Contains(tc.got, "{DIR}") || strings.Contains(tc.got, "{STORAGE}") || strings.Contains(tc.got, "{BARE}") {
				t.Errorf("placeholder left:\n%s", tc.got)
			}
			if strings.Count(tc.got, "{") != strings.Count(tc.got, "}") {
				t.Errorf("unbalanced braces:\n%s", tc.got)
			}
		})
	}
	// Only the bolt config has a bare site: one reverse_proxy without a gate before it.
	if n := strings.Count(bolt, "reverse_proxy"); n != 2 {
		t.Errorf("bolt config has %d reverse_proxy, want 2", n)
	}
	if n := strings.Count(redis, "reverse_proxy"); n != 1 {
		t.Errorf("redis config has %d reverse_proxy, want 1", n)
	}
}

// infoServer is the start of real redis-server 7.0 output for INFO server, as RESP.
const infoServer = "$1234\r\n# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux 6.1.0 x86_64\r\nprocess_id:4242\r\nprocess_supervised:no\r\n"

var parseRedisPIDCases = []struct {
	name    string
	in      string
	want    int
	wantErr string
}{
	{"info server", infoServer, 4242, ""},
	{"no pid line", "$10\r\n# Server\r\nredis_version:7.0.15\r\n", 0, "no process_id line"},
	{"error reply", "-ERR unknown command 'INFO'\r\n", 0, "INFO server: -ERR unknown command"},
	{"auth required", "-NOAUTH Authentication required.\r\n", 0, "NOAUTH"},
	{"bad pid", "$20\r\nprocess_id:abc\r\n", 0, `bad process_id "abc"`},
	{"zero pid", "$20\r\nprocess_id:0\r\n", 0, `bad process_id "0"`},
	{"empty", "", 0, "no process_id line"},
}

func TestParseRedisPID(t *testing.T) {
	for _, tc := range parseRedisPIDCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRedisPID(bufio.NewReader(strings.NewReader(tc.in)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func FuzzParseRedisPID(f *testing.F) {
	for _, tc := range parseRedisPIDCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		pid, err := parseRedisPID(bufio.NewReader(strings.NewReader(in)))
		if err == nil && pid <= 0 {
			t.Fatalf("pid %d without error from %q", pid, in)
		}
	})
}

var parseRedisVersionCases = []struct{ in, want string }{
	{"Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0\n", "7.0.15"},
	{"Redis server v=7.2.4-rc1 sha=abc\n", "7.2.4-rc1"},
	{"redis-server: command not found\n", ""},
	{"", ""},
	{"x v= y", ""},
}

func TestParseRedisVersion(t *testing.T) {
	for _, tc := range parseRedisVersionCases {
		if got := parseRedisVersion(tc.in); got != tc.want {
			t.Errorf("parseRedisVersion(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseRedisVersion(f *testing.F) {
	for _, tc := range parseRedisVersionCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v := parseRedisVersion(in)
		if v != "" && (!strings.Contains(in, "v="+v) || strings.ContainsAny(v, " \r\n")) {
			t.Fatalf("version %q from %q", v, in)
		}
	})
}

// TestConfigJSON pins the settings in the JSON: the Redis target only when Redis runs.
func TestConfigJSON(t *testing.T) {
	for _, tc := range []struct {
		c    config
		want string
	}{
		{config{Duration: 10 * time.Second, Warmup: 2 * time.Second, Rounds: 3, Connections: 32, Threads: 2, Target: 0.9, Redis: true, RedisTarget: 0.85},
			`{"duration":"10s","warmup":"2s","rounds":3,"connections":32,"threads":2,"target_ratio":0.9,"redis":true,"target_ratio_redis":0.85}`},
		{config{Duration: 10 * time.Second, Rounds: 1, Connections: 1, Threads: 1, Target: 0.9, RedisTarget: 0.85},
			`{"duration":"10s","warmup":"0s","rounds":1,"connections":1,"threads":1,"target_ratio":0.9,"redis":false}`},
	} {
		b, err := json.Marshal(tc.c)
		if err != nil || string(b) != tc.want {
			t.Errorf("config JSON %s, %v; want %s", b, err, tc.want)
		}
	}
}
