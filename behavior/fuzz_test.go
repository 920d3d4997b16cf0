package behavior

import (
	"math"
	"strings"
	"testing"
)

var parseSignalCases = []struct {
	in   string
	want Signal
	err  string
}{
	{"new_device", NewDevice, ""},
	{"new_ip", NewIP, ""},
	{"new_country", NewCountry, ""},
	{"impossible_travel", ImpossibleTravel, ""},
	{"  New_IP\t", NewIP, ""},
	{"IMPOSSIBLE_TRAVEL", ImpossibleTravel, ""},
	{"", "", `unknown behavior signal "": want one of new_device, new_ip, new_country, impossible_travel`},
	{"new-device", "", `unknown behavior signal "new-device": want one of new_device, new_ip, new_country, impossible_travel`},
	{"new_ipx", "", `unknown behavior signal "new_ipx": want one of new_device, new_ip, new_country, impossible_travel`},
	{"new_ip\n", NewIP, ""},
	{"new\x00ip", "", `unknown behavior signal "new\x00ip": want one of new_device, new_ip, new_country, impossible_travel`},
}

func TestParseSignal(t *testing.T) {
	for _, c := range parseSignalCases {
		got, err := ParseSignal(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("ParseSignal(%q) = %q, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSignal(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if got := Signals(); len(got) != 4 || got[0] != NewDevice || got[3] != ImpossibleTravel {
		t.Errorf("Signals() = %v", got)
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, c := range parseSignalCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignal(s)
		if err != nil {
			if sig != "" {
				t.Errorf("ParseSignal(%q) = %q with error %v", s, sig, err)
			}
			for _, v := range Signals() {
				if !strings.Contains(err.Error(), string(v)) {
					t.Errorf("error %q does not list %s", err, v)
				}
			}
			return
		}
		if sig.index() < 0 {
			t.Fatalf("ParseSignal(%q) = %q, not a signal", s, sig)
		}
		if !strings.EqualFold(strings.TrimSpace(s), string(sig)) {
			t.Errorf("ParseSignal(%q) = %q", s, sig)
		}
		if again, err := ParseSignal(string(sig)); err != nil || again != sig {
			t.Errorf("ParseSignal(%q) = %q, %v; not a round trip", sig, again, err)
		}
	})
}

// FuzzDistanceKM checks that DistanceKM is a distance on the sphere for any valid points.
func FuzzDistanceKM(f *testing.F) {
	f.Add(berlin.Lat, berlin.Lon, paris.Lat, paris.Lon)
	f.Add(90.0, 0.0, -90.0, 0.0)
	f.Add(10.0, 20.0, -10.0, -160.0)
	f.Add(0.0, 179.9, 0.0, -179.9)
	f.Fuzz(func(t *testing.T, lat1, lon1, lat2, lon2 float64) {
		a := Location{Lat: lat1, Lon: lon1, Known: true}
		b := Location{Lat: lat2, Lon: lon2, Known: true}
		if !a.valid() || !b.valid() {
			return
		}
		d := DistanceKM(a, b)
		if math.IsNaN(d) || d < 0 || d > math.Pi*earthRadiusKM*(1+1e-12) {
			t.Fatalf("DistanceKM(%v, %v) = %v", a, b, d)
		}
		if r := DistanceKM(b, a); math.Abs(r-d) > 1e-6 {
			t.Errorf("not symmetric: %v and %v", d, r)
		}
		if z := DistanceKM(a, a); z != 0 {
			t.Errorf("DistanceKM(a, a) = %v", z)
		}
	})
}
