import Foundation

/// A standard 5-field cron expression (minute hour day-of-month month day-of-week), matched
/// against the wall clock of a time zone (UTC unless given).
///
/// Daylight-saving changes, as cron does for fixed times: a wall-clock time the clocks skip
/// (02:30 on the night they go forward) fires once, when the clocks jump, however many times
/// fall in the gap; a wall-clock time that happens twice (when they go back) fires the first
/// time only. (So `*/15 * * * *` pauses for the repeated hour: use UTC for interval-like
/// schedules.)
///
/// Fields take `*`, numbers, ranges (`1-5`), lists (`1,15`), steps (`*/10`, `0-30/5`), and names
/// for months (`JAN`…`DEC`) and weekdays (`SUN`…`SAT`; 0 and 7 are Sunday). As in cron, when
/// both day-of-month and day-of-week are restricted, a day matching either one matches.
public struct CronSchedule: Sendable, Hashable, CustomStringConvertible {
    public let expression: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool

    /// Parses `expression`.
    /// - Throws: `ValidationError` naming the field and what is wrong with it.
    public init(parsing expression: String) throws(ValidationError) {
        let fields = expression.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ValidationError(path: "$.trigger.cron", message: "'\(expression)' has \(fields.count) fields; a cron expression has 5: minute hour day-of-month month day-of-week")
        }
        self.expression = expression
        minutes = try Self.parse(fields[0], name: "minute", range: 0...59, names: [:])
        hours = try Self.parse(fields[1], name: "hour", range: 0...23, names: [:])
        daysOfMonth = try Self.parse(fields[2], name: "day-of-month", range: 1...31, names: [:])
        months = try Self.parse(fields[3], name: "month", range: 1...12, names: Self.monthNames)
        let weekdays = try Self.parse(fields[4], name: "day-of-week", range: 0...7, names: Self.dayNames)
        daysOfWeek = Set(weekdays.map { $0 == 7 ? 0 : $0 })
        dayOfMonthRestricted = fields[2] != "*"
        dayOfWeekRestricted = fields[4] != "*"
    }

    public var description: String { expression }

    /// UTC.
    public static let utc = TimeZone(identifier: "UTC")!

    /// The first time strictly after `date` that matches the wall clock of `timeZone`, or `nil`
    /// if none within 5 years (see the type's notes on daylight-saving changes).
    public func next(after date: Date, in timeZone: TimeZone = CronSchedule.utc) -> Date? {
        // Wall-clock times are searched as if they were UTC (no jumps), then placed in the zone.
        let zone = { (instant: Date) in Double(timeZone.secondsFromGMT(for: instant)) }
        var wallClock = Date(timeIntervalSince1970: date.timeIntervalSince1970 + zone(date))
        let limit = wallClock.addingTimeInterval(5 * 366 * 86_400)
        while let candidate = nextWallClock(after: wallClock), candidate <= limit {
            wallClock = candidate
            let instants = Self.instants(showing: candidate, offset: zone)
            if instants.isEmpty {
                // Skipped by the clocks going forward: fire as they jump, unless that is past.
                let jump = Self.endOfGap(at: candidate, offset: zone)
                if jump > date { return jump }
            } else if instants[0] > date {
                return instants[0]
            }
            // Otherwise the first time this wall clock was shown is not after `date`: it fired then.
        }
        return nil
    }

    /// The first wall-clock minute strictly after `wallClock` (a wall-clock time written as if
    /// it were UTC) that matches.
    func nextWallClock(after wallClock: Date) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = Self.utc
        // The first whole minute strictly after `wallClock`.
        var candidate = Date(timeIntervalSince1970: (wallClock.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
        let limit = wallClock.addingTimeInterval(5 * 366 * 86_400)
        while candidate <= limit {
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .weekday], from: candidate)
            guard months.contains(parts.month!) else {
                candidate = calendar.date(from: DateComponents(year: parts.year, month: parts.month! + 1, day: 1))!
                continue
            }
            guard dayMatches(day: parts.day!, weekday: parts.weekday! - 1) else {
                candidate = calendar.date(byAdding: .day, value: 1, to: calendar.startOfDay(for: candidate))!
                continue
            }
            guard hours.contains(parts.hour!) else {
                candidate = calendar.date(byAdding: .hour, value: 1, to: calendar.dateInterval(of: .hour, for: candidate)!.start)!
                continue
            }
            guard minutes.contains(parts.minute!) else {
                candidate = calendar.date(byAdding: .minute, value: 1, to: candidate)!
                continue
            }
            return candidate
        }
        return nil
    }

    /// The instants at which the zone's clocks show `wallClock`, earliest first: one, two when
    /// the clocks go back over it, none when they skip it.
    static func instants(showing wallClock: Date, offset: (Date) -> Double) -> [Date] {
        let time = wallClock.timeIntervalSince1970
        // The offsets in force around it (a day either side covers any one change).
        let offsets = Set([time - 86_400, time, time + 86_400].map { offset(Date(timeIntervalSince1970: $0)) })
        return offsets.map { Date(timeIntervalSince1970: time - $0) }
            .filter { offset($0) == time - $0.timeIntervalSince1970 }
            .sorted()
    }

    /// When the clocks jump over `wallClock` (a time they skip): the first instant whose wall
    /// clock is past it.
    static func endOfGap(at wallClock: Date, offset: (Date) -> Double) -> Date {
        let time = wallClock.timeIntervalSince1970
        let offsets = [time - 86_400, time + 86_400].map { offset(Date(timeIntervalSince1970: $0)) }
        // Before the jump the wall clock is behind `wallClock`, after it ahead: find the second.
        var before = time - offsets.max()!
        var after = time - offsets.min()!
        while after - before > 1 {
            let middle = ((before + after) / 2).rounded(.down)
            let instant = Date(timeIntervalSince1970: middle)
            if middle + offset(instant) >= time { after = middle } else { before = middle }
        }
        return Date(timeIntervalSince1970: after)
    }

    func dayMatches(day: Int, weekday: Int) -> Bool {
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (true, true): daysOfMonth.contains(day) || daysOfWeek.contains(weekday)
        case (true, false): daysOfMonth.contains(day)
        case (false, true): daysOfWeek.contains(weekday)
        case (false, false): true
        }
    }

    static let monthNames = ["JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12]
    static let dayNames = ["SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6]

    static func parse(_ field: String, name: String, range: ClosedRange<Int>, names: [String: Int]) throws(ValidationError) -> Set<Int> {
        func fail(_ why: String) -> ValidationError {
            ValidationError(path: "$.trigger.cron", message: "\(name) field '\(field)': \(why)")
        }
        func value(_ text: Substring) throws(ValidationError) -> Int {
            if let number = Int(text) {
                guard range.contains(number) else { throw fail("\(number) is outside \(range.lowerBound)-\(range.upperBound)") }
                return number
            }
            guard let named = names[text.uppercased()] else { throw fail("'\(text)' is not a number\(names.isEmpty ? "" : " or a name")") }
            return named
        }
        var result = Set<Int>()
        for part in field.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw fail("empty list item") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw fail("more than one '/'") }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), (1...999).contains(parsed) else { throw fail("step '\(pieces[1])' is not a number from 1 to 999") }
                step = parsed
            }
            let base = pieces[0]
            var low = range.lowerBound
            var high = range.upperBound
            if base != "*" {
                let bounds = base.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2 else { throw fail("'\(base)' is not a range") }
                low = try value(bounds[0])
                high = bounds.count == 2 ? try value(bounds[1]) : (pieces.count == 2 ? range.upperBound : low)
            }
            if low <= high {
                result.formUnion(stride(from: low, through: high, by: step))
            } else {
                // A range that wraps around: 22-2 is 22, 23, 0, 1, 2; FRI-MON is Friday to Monday.
                let size = range.upperBound - range.lowerBound + 1
                for value in stride(from: low, through: high + size, by: step) {
                    result.insert(range.lowerBound + (value - range.lowerBound) % size)
                }
            }
        }
        return result
    }
}
