import BatonProtocol
import Foundation
import Testing

@Suite("RFC 3339 date-times as JSON Schema's date-time format reads them")
struct RFC3339Tests {
    @Test("offsets up to ±23:59, any fraction digits, lower-case t and z, a leap second, years before 1970")
    func accepted() throws {
        let noon = Date(timeIntervalSince1970: 1_796_212_800)  // 2026-12-02T12:00:00Z
        #expect(BatonJSON.parseDate("2026-12-02T12:00:00Z") == noon)
        #expect(BatonJSON.parseDate("2026-12-02t12:00:00z") == noon)
        #expect(BatonJSON.parseDate("2026-12-02T13:30:00+01:30") == noon)
        #expect(BatonJSON.parseDate("2026-12-01T17:41:00-18:19") == noon)
        #expect(try #require(BatonJSON.parseDate("2026-12-02T12:00:00.123456789Z")).timeIntervalSince(noon) > 0.1234)
        #expect(BatonJSON.parseDate("2026-12-02T11:59:60Z") == noon, "a leap second is the next second")
        #expect(BatonJSON.parseDate("2024-02-29T00:00:00Z") != nil && BatonJSON.parseDate("2000-02-29T00:00:00Z") != nil)
        #expect(BatonJSON.parseDate("0093-05-22T17:50:48.0382Z") == Date(timeIntervalSince1970: -59_220_050_951.9618), "proleptic Gregorian, as Python reads it")
        #expect(BatonJSON.parseDate("1970-01-01T00:00:00Z") == Date(timeIntervalSince1970: 0))
    }

    @Test("a day the month lacks, hour 24, a missing zone, a bare fraction point, trailing text: refused")
    func refused() {
        for text in ["2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-12-02T24:00:00Z", "2026-12-02T12:00:00",
                     "2026-12-02T12:00:00.Z", "2026-12-02T12:00:00Zx", "2026-12-02T12:00:00+24:00", "2026-12-02 12:00:00Z", "",
                     "2026-13-01T00:00:00Z", "２026-12-02T12:00:00Z"] {
            #expect(BatonJSON.parseDate(text) == nil, "\(text)")
        }
    }
}
