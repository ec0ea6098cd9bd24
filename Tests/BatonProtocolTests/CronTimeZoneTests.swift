import BatonProtocol
import Foundation
import Testing

@Suite("Cron schedules in a time zone, across daylight-saving changes")
struct CronTimeZoneTests {
    static func date(_ text: String) -> Date { BatonJSON.parseDate(text)! }

    static func next(_ expression: String, _ zone: String, after: String) throws -> Date? {
        try CronSchedule(parsing: expression).next(after: date(after), in: TimeZone(identifier: zone)!)
    }

    @Test("wall-clock times of the zone, in winter and in summer", arguments: [
        // 09:00 Berlin on weekdays: 08:00Z in winter (CET), 07:00Z in summer (CEST).
        ("0 9 * * 1-5", "Europe/Berlin", "2026-01-05T00:00:00Z", "2026-01-05T08:00:00Z"),
        ("0 9 * * 1-5", "Europe/Berlin", "2026-03-27T12:00:00Z", "2026-03-30T07:00:00Z"),  // Friday → Monday, over the change
        ("0 9 * * 1-5", "Europe/Berlin", "2026-10-23T12:00:00Z", "2026-10-26T08:00:00Z"),  // and back
        // The weekday is the zone's: 23:30 Monday in New York is Tuesday in UTC.
        ("30 23 * * MON", "America/New_York", "2026-01-05T00:00:00Z", "2026-01-06T04:30:00Z"),
        // A half-hour offset (+05:30).
        ("0 9 * * *", "Asia/Kolkata", "2026-06-01T00:00:00Z", "2026-06-01T03:30:00Z"),
        // The southern hemisphere: Sydney is on summer time (+11) in January, standard (+10) in July.
        ("0 6 * * *", "Australia/Sydney", "2026-01-10T00:00:00Z", "2026-01-10T19:00:00Z"),
        ("0 6 * * *", "Australia/Sydney", "2026-07-10T00:00:00Z", "2026-07-10T20:00:00Z"),
        ("* * * * *", "UTC", "2026-11-25T10:15:30Z", "2026-11-25T10:16:00Z"),
        // The example job new-year-greeting: 09:00 on 1 January in Berlin.
        ("0 9 1 1 *", "Europe/Berlin", "2026-12-03T00:00:00Z", "2027-01-01T08:00:00Z"),
    ])
    func wallClock(_ expression: String, _ zone: String, _ after: String, _ expected: String) throws {
        #expect(try Self.next(expression, zone, after: after) == Self.date(expected))
    }

    @Test("a time the clocks skip fires once, as they jump; the day after at its time again")
    func springForward() throws {
        // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z.
        #expect(try Self.next("30 2 * * *", "Europe/Berlin", after: "2026-03-28T12:00:00Z") == Self.date("2026-03-29T01:00:00Z"))
        #expect(try Self.next("30 2 * * *", "Europe/Berlin", after: "2026-03-29T01:00:00Z") == Self.date("2026-03-30T00:30:00Z"))
        // Four times in the gap still fire once, then the schedule goes on the next day.
        #expect(try Self.next("*/15 2 * * *", "Europe/Berlin", after: "2026-03-28T12:00:00Z") == Self.date("2026-03-29T01:00:00Z"))
        #expect(try Self.next("*/15 2 * * *", "Europe/Berlin", after: "2026-03-29T01:00:00Z") == Self.date("2026-03-30T00:00:00Z"))
        // New York, 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00Z.
        #expect(try Self.next("0 2 * * *", "America/New_York", after: "2026-03-07T12:00:00Z") == Self.date("2026-03-08T07:00:00Z"))
        // Times just outside the gap are untouched.
        #expect(try Self.next("59 1 * * *", "Europe/Berlin", after: "2026-03-28T12:00:00Z") == Self.date("2026-03-29T00:59:00Z"))
        #expect(try Self.next("0 3 * * *", "Europe/Berlin", after: "2026-03-28T12:00:00Z") == Self.date("2026-03-29T01:00:00Z"))
    }

    @Test("a time the clocks show twice fires the first time only")
    func fallBack() throws {
        // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:30 happens at 00:30Z and 01:30Z.
        #expect(try Self.next("30 2 * * *", "Europe/Berlin", after: "2026-10-24T12:00:00Z") == Self.date("2026-10-25T00:30:00Z"))
        #expect(try Self.next("30 2 * * *", "Europe/Berlin", after: "2026-10-25T00:30:00Z") == Self.date("2026-10-26T01:30:00Z"))
        // Asked during the second 02:xx (a dispatcher that just started): that wall clock was shown before.
        #expect(try Self.next("30 2 * * *", "Europe/Berlin", after: "2026-10-25T01:10:00Z") == Self.date("2026-10-26T01:30:00Z"))
        // Every 30 minutes: 02:00 and 02:30 CEST, then the repeated hour is skipped, then 03:00 CET.
        var fires: [Date] = []
        var cursor = Self.date("2026-10-24T23:45:00Z")
        for _ in 0..<4 {
            cursor = try #require(try CronSchedule(parsing: "*/30 * * * *").next(after: cursor, in: TimeZone(identifier: "Europe/Berlin")!))
            fires.append(cursor)
        }
        #expect(fires == ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z"].map(Self.date))
    }

    @Test("a daily time fires exactly once on every day of the year, in zones with and without daylight saving",
          arguments: ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"],
          ["30 2 * * *", "0 0 * * *", "59 23 * * *", "0 3 * * *"])
    func oncePerDay(_ zone: String, _ expression: String) throws {
        let timeZone = TimeZone(identifier: zone)!
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let schedule = try CronSchedule(parsing: expression)
        var cursor = Self.date("2025-12-31T00:00:00Z")
        var days: [String: Int] = [:]
        var previous = cursor
        while true {
            let fire = try #require(schedule.next(after: cursor, in: timeZone))
            #expect(fire > previous, "strictly after the previous one")
            guard fire < Self.date("2027-01-02T00:00:00Z") else { break }
            let parts = calendar.dateComponents([.year, .month, .day], from: fire)
            if parts.year == 2026 { days["\(parts.month!)-\(parts.day!)", default: 0] += 1 }
            previous = fire
            cursor = fire
        }
        #expect(days.count == 365, "\(365 - days.count) days of 2026 without a run")
        #expect(days.values.allSatisfy { $0 == 1 }, "days with more than one run: \(days.filter { $0.value > 1 })")
    }

    @Test("a cron trigger's time zone is checked: exact IANA names and UTC; other trigger types ignore it")
    func validation() throws {
        for zone in ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"] {
            try JobTrigger.cron("0 9 * * *", timeZone: zone).validate()
        }
        for zone in ["Mars/Olympus_Mons", "europe/berlin", "", "GMT+5", "Europe/Berlin "] {
            let error = #expect(throws: ValidationError.self) { try JobTrigger.cron("0 9 * * *", timeZone: zone).validate() }
            #expect(error?.path == "$.trigger.timeZone" && error?.message.contains("not a time zone name") == true, "\(zone): \(String(describing: error))")
        }
        var interval = JobTrigger.interval(seconds: 60)
        interval.timeZone = "Not/AZone"
        try interval.validate()
        // The next tick follows the zone; an unset zone is UTC.
        let after = Self.date("2026-01-05T00:00:00Z")
        #expect(JobTrigger.cron("0 9 * * *", timeZone: "Europe/Berlin").nextTick(after: after) == Self.date("2026-01-05T08:00:00Z"))
        #expect(JobTrigger.cron("0 9 * * *").nextTick(after: after) == Self.date("2026-01-05T09:00:00Z"))
        // The one-line summary the CLI and the dashboard show.
        #expect(JobTrigger.cron("0 9 * * 1-5", timeZone: "Europe/Berlin").summary == "cron 0 9 * * 1-5 (Europe/Berlin)")
        #expect(JobTrigger.cron("0 9 * * 1-5").summary == "cron 0 9 * * 1-5 (UTC)")
        #expect(JobTrigger.invoke().summary == "invoke only")
        #expect(JobTrigger.interval(seconds: 60).summary == "every 60 s")
        // Registrations written before time zones existed decode as UTC.
        let old = try BatonJSON.decoder.decode(JobTrigger.self, from: Data(#"{"type":"cron","eventName":"baton.scheduled","cron":"0 9 * * *"}"#.utf8))
        #expect(old.timeZone == nil && old.nextTick(after: after) == Self.date("2026-01-05T09:00:00Z"))
    }

    @Test("docs/openapi.yaml lists exactly the time zone names the server accepts")
    func contractListsTheZones() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let document = try String(contentsOf: root.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        let line = try #require(document.split(separator: "\n").first { $0.contains("TimeZoneName:") && $0.contains("enum:") },
                                "a TimeZoneName schema with its enum on one line")
        let list = try #require(line.range(of: "enum: [").map { line[$0.upperBound...] }?.split(separator: "]").first)
        let names = Set(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "'")) })
        #expect(names == JobTrigger.knownTimeZoneNames,
                "only in the document: \(names.subtracting(JobTrigger.knownTimeZoneNames).sorted()); only in the server: \(JobTrigger.knownTimeZoneNames.subtracting(names).sorted())")
    }
}
