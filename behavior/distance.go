package behavior

import "math"

// earthRadiusKM is the Earth's mean radius (IUGG), which the haversine formula assumes.
const earthRadiusKM = 6371.0088

// Location is a point on the Earth, in degrees (WGS 84, as MaxMind gives it).
type Location struct {
	// Lat is the latitude, -90 to 90; Lon the longitude, -180 to 180.
	Lat, Lon float64
	// Known says the point is set; a zero Location is unknown.
	Known bool
}

// valid reports whether l is known and its coordinates are in range.
func (l Location) valid() bool {
	return l.Known && l.Lat >= -90 && l.Lat <= 90 && l.Lon >= -180 && l.Lon <= 180
}

// DistanceKM is the great-circle (haversine) distance between a and b in kilometres, on a
// sphere of the Earth's mean radius (within 0.5% of the distance on the ellipsoid). It uses
// the coordinates whatever Known says: callers check Known.
func DistanceKM(a, b Location) float64 {
	const rad = math.Pi / 180
	φ1, φ2 := a.Lat*rad, b.Lat*rad
	dφ, dλ := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	sφ, sλ := math.Sin(dφ/2), math.Sin(dλ/2)
	h := sφ*sφ + math.Cos(φ1)*math.Cos(φ2)*sλ*sλ
	// Rounding can push h a hair outside [0, 1] for (nearly) antipodal points.
	h = min(max(h, 0), 1)
	return 2 * earthRadiusKM * math.Asin(math.Sqrt(h))
}
