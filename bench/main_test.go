package main

import (
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
	ok := config{Duration: 10 * time.Second, Warmup: 2 * time.Second, Rounds: 3, Connections: 32, Threads: 2, Target: 0.9}
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

func TestNoise(t *testing.T) {
	rd := func(ratio float64, sockErr int64) round {
		return round{Ratio: ratio, Bare: measurement{wrkResult: wrkResult{SocketErrors: sockErr}}}
	}
	for _, tc := range []struct {
		name   string
		load   string
		rounds []round
		want   []string // substrings, one per warning, in order
	}{
		{"quiet", "0.50 1.00 1.00", []round{rd(0.9, 0), rd(0.95, 0), rd(0.85, 0)}, nil},
		{"no load average", "", []round{rd(0.9, 0)}, nil},
		{"busy", "2.50 1.00 1.00", []round{rd(0.9, 0)}, []string{"busy before the run (1-minute load 2.50 on 2 CPUs)"}},
		{"rounds disagree", "0.10 0 0", []round{rd(0.75, 0), rd(1.1, 0)}, []string{"ratios 0.750 to 1.100"}},
		{"socket errors", "0.10 0 0", []round{rd(0.9, 3), rd(0.9, 4)}, []string{"7 socket errors"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := result{CPUs: 2, LoadAvgBefore: tc.load, Rounds: tc.rounds}
			var ratios []float64
			for _, x := range tc.rounds {
				ratios = append(ratios, x.Ratio)
			}
			got := r.noise(ratios)
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
