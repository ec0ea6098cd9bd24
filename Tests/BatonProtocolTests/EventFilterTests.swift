import BatonProtocol
import Foundation
import PropertyBased
import Testing

@Suite("Event filters")
struct EventFilterTests {
    static let payload: JSONValue = [
        "name": "Ada Lovelace", "plan": "pro", "age": 36, "score": 9.5, "verified": true, "nickname": nil,
        "tags": ["math", "poetry"], "address": ["city": "London", "zip": "W1"],
        "orders": [["total": 10, "status": "paid"], ["total": 250, "status": "refunded"]],
    ]

    @Test("filters match as in Trigger.dev v2", arguments: [
        // Arrays of allowed values: one of.
        (#"{"plan": ["pro", "team"]}"#, true),
        (#"{"plan": ["free"]}"#, false),
        (#"{"age": [36, 40]}"#, true),
        (#"{"age": [36.0]}"#, true),
        (#"{"verified": [true]}"#, true),
        (#"{"verified": [false]}"#, false),
        (#"{"missing": ["x"]}"#, false),
        (#"{"plan": []}"#, true),
        // Nested objects, and arrays of objects (some element matches).
        (#"{"address": {"city": ["London"]}}"#, true),
        (#"{"address": {"city": ["Paris"]}}"#, false),
        (#"{"orders": {"status": ["refunded"], "total": [{"$gt": 100}]}}"#, true),
        (#"{"orders": {"status": ["paid"], "total": [{"$gt": 100}]}}"#, false),
        // Content filters (all of).
        (#"{"name": [{"$startsWith": "Ada"}]}"#, true),
        (#"{"name": [{"$startsWith": "Lovelace"}]}"#, false),
        (#"{"name": [{"$endsWith": "lace"}]}"#, true),
        (#"{"name": [{"$ignoreCaseEquals": "ADA LOVELACE"}]}"#, true),
        (#"{"name": [{"$ignoreCaseEquals": "ada"}]}"#, false),
        (#"{"nickname": [{"$exists": true}]}"#, true),
        (#"{"missing": [{"$exists": false}]}"#, true),
        (#"{"missing": [{"$exists": true}]}"#, false),
        (#"{"nickname": [{"$isNull": true}]}"#, true),
        (#"{"plan": [{"$isNull": true}]}"#, false),
        (#"{"plan": [{"$anythingBut": "free"}]}"#, true),
        (#"{"plan": [{"$anythingBut": ["pro", "team"]}]}"#, false),
        (#"{"age": [{"$gt": 35}, {"$lt": 37}]}"#, true),
        (#"{"age": [{"$gte": 36}, {"$lte": 36}]}"#, true),
        (#"{"age": [{"$gt": 36}]}"#, false),
        (#"{"score": [{"$between": [9, 10]}]}"#, true),
        (#"{"score": [{"$between": [0, 9]}]}"#, false),
        (#"{"score": [{"$between": [10, 9]}]}"#, true),  // bounds in either order
        (#"{"name": [{"$gt": 1}]}"#, false),
        (#"{"tags": [{"$includes": "poetry"}]}"#, true),
        (#"{"tags": [{"$includes": "music"}]}"#, false),
        (#"{"plan": [{"$not": "free"}]}"#, true),
        (#"{"plan": [{"$not": "pro"}]}"#, false),
        // Several fields: all must match.
        (#"{"plan": ["pro"], "address": {"zip": ["W1"]}, "age": [{"$lt": 40}]}"#, true),
        (#"{"plan": ["pro"], "address": {"zip": ["E1"]}}"#, false),
        ("{}", true),
    ])
    func matching(_ filter: String, _ expected: Bool) throws {
        let definition = try BatonJSON.decoder.decode(JSONValue.self, from: Data(filter.utf8))
        #expect(try EventFilter(definition).matches(Self.payload) == expected)
    }

    @Test("an absent payload matches only the empty filter")
    func absent() throws {
        #expect(try EventFilter([:]).matches(nil))
        #expect(try !EventFilter(["a": ["x"]]).matches(nil))
        #expect(try !EventFilter(["a": ["x"]]).matches(.null))
    }

    @Test("invalid filters name the offending part", arguments: [
        (#"["a"]"#, "$.filter"),
        (#"{"plan": "pro"}"#, "$.filter.plan"),
        (#"{"age": [{"$gt": "ten"}]}"#, "$.filter.age[0].$gt"),
        (#"{"age": [{"$between": [10]}]}"#, "$.filter.age[0].$between"),
        (#"{"age": [{"$between": [1, "ten"]}]}"#, "$.filter.age[0].$between"),
        (#"{"name": [{"$startsWith": 1}]}"#, "$.filter.name[0].$startsWith"),
        (#"{"name": [{"$regex": "a.*"}]}"#, "$.filter.name[0].$regex"),
        (#"{"name": ["a", {"$startsWith": "b"}]}"#, "$.filter.name[0]"),
        (#"{"a": {"b": [{"$exists": "yes"}]}}"#, "$.filter.a.b[0].$exists"),
    ])
    func invalid(_ filter: String, _ path: String) throws {
        let definition = try BatonJSON.decoder.decode(JSONValue.self, from: Data(filter.utf8))
        let error = #expect(throws: ValidationError.self) { try EventFilter(definition) }
        #expect(error?.path == path)
    }

    @Test("a trigger matches name, source, payload filter and context filter together")
    func triggers() throws {
        let trigger = JobTrigger.event(name: "user.created", source: "app", filter: try EventFilter(["plan": ["pro"]]),
                                       contextFilter: try EventFilter(["region": ["eu"]]))
        let event = EventEnvelope(id: "e", name: "user.created", source: "app", payload: ["plan": "pro"], context: ["region": "eu"])
        #expect(trigger.matches(event))
        var other = event
        other.context = ["region": "us"]
        #expect(!trigger.matches(other))
        other = event
        other.payload = ["plan": "free"]
        #expect(!trigger.matches(other))
    }

    // MARK: - Properties

    /// Flat payloads of up to six fields with integer or string values.
    static let payloads = Gen.int(in: -1000...1000).array(of: 1...6).map { (values: [Int]) -> JSONValue in
        .object(Dictionary(uniqueKeysWithValues: values.enumerated().map { index, value in
            ("k\(index)", index.isMultiple(of: 2) ? JSONValue.int(Int64(value)) : .string("s\(value)"))
        }))
    }

    @Test("the empty filter matches every payload")
    func emptyMatchesAll() async {
        await propertyCheck(input: Self.payloads) { payload in
            #expect((try? EventFilter([:]))?.matches(payload) == true)
        }
    }

    @Test("a filter allowing each field's own value matches its payload")
    func selfMatches() async {
        await propertyCheck(input: Self.payloads) { payload in
            guard case .object(let fields) = payload else { return }
            let filter = JSONValue.object(fields.mapValues { JSONValue.array([$0]) })
            #expect((try? EventFilter(filter))?.matches(payload) == true)
        }
    }

    @Test("$anythingBut a field's own value never matches; $exists agrees with presence")
    func exclusion() async {
        await propertyCheck(input: Self.payloads, Gen.int(in: 0...8)) { payload, index in
            guard case .object(let fields) = payload else { return }
            let key = "k\(index)"
            if let value = fields[key] {
                #expect((try? EventFilter([key: [["$anythingBut": value]]]))?.matches(payload) == false)
            }
            #expect((try? EventFilter([key: [["$exists": .bool(fields[key] != nil)]]]))?.matches(payload) == true)
        }
    }
}

@Suite("Cron schedules")
struct CronScheduleTests {
    static func date(_ text: String) -> Date { BatonJSON.parseDate(text)! }

    @Test("next occurrence after a time, in UTC", arguments: [
        ("* * * * *", "2026-11-25T10:15:30Z", "2026-11-25T10:16:00Z"),
        ("* * * * *", "2026-11-25T10:15:00Z", "2026-11-25T10:16:00Z"),
        ("*/15 * * * *", "2026-11-25T10:16:00Z", "2026-11-25T10:30:00Z"),
        ("0 9 * * *", "2026-11-25T10:00:00Z", "2026-11-26T09:00:00Z"),
        ("30 8 1 * *", "2026-11-25T00:00:00Z", "2026-12-01T08:30:00Z"),
        ("0 0 1 JAN *", "2026-11-25T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("0 12 * * MON-FRI", "2026-11-28T13:00:00Z", "2026-11-30T12:00:00Z"),  // Saturday → Monday
        ("0 0 * * 0", "2026-11-25T00:00:00Z", "2026-11-29T00:00:00Z"),        // Sunday
        ("0 0 * * 7", "2026-11-25T00:00:00Z", "2026-11-29T00:00:00Z"),        // 7 is Sunday too
        ("0 0 13 * FRI", "2026-11-25T00:00:00Z", "2026-11-27T00:00:00Z"),     // day-of-month OR day-of-week
        ("0 0 29 2 *", "2026-11-25T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("5,10 1-2 * * *", "2026-11-25T01:07:00Z", "2026-11-25T01:10:00Z"),
        ("0 23-1 * * *", "2026-11-25T02:30:00Z", "2026-11-25T23:00:00Z"),     // a range that wraps past midnight
        ("0 23-1 * * *", "2026-11-25T23:30:00Z", "2026-11-26T00:00:00Z"),
        ("0 0 * * FRI-MON", "2026-11-25T00:00:00Z", "2026-11-27T00:00:00Z"), // Wednesday → Friday
        ("0 0 * * FRI-MON", "2026-11-29T12:00:00Z", "2026-11-30T00:00:00Z"), // Sunday → Monday
        ("0\t0  * *\t* ", "2026-11-25T10:00:00Z", "2026-11-26T00:00:00Z"),  // tabs and repeated spaces
    ])
    func next(_ expression: String, _ after: String, _ expected: String) throws {
        #expect(try CronSchedule(parsing: expression).next(after: Self.date(after)) == Self.date(expected))
    }

    @Test("invalid expressions name the field", arguments: [
        ("* * * *", "4 fields"),
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day-of-month"),
        ("* * * FOO *", "month"),
        ("* * * * 8", "day-of-week"),
        ("*/0 * * * *", "step"),
        ("*/1000 * * * *", "step"),
        ("0 0 * *\u{2003}*", "4 fields"),
        ("1,,2 * * * *", "empty list item"),
    ])
    func invalid(_ expression: String, _ mention: String) {
        let error = #expect(throws: ValidationError.self) { try CronSchedule(parsing: expression) }
        #expect(error?.message.contains(mention) == true, "\(error?.message ?? "")")
    }
}

@Suite("Interval schedules")
struct IntervalScheduleTests {
    @Test("interval ticks fall on multiples of the interval, whoever computes them")
    func aligned() {
        let trigger = JobTrigger.interval(seconds: 60)
        // 1_000_020 is a multiple of 60: two instants in the same interval agree on the next tick.
        let a = trigger.nextTick(after: Date(timeIntervalSince1970: 1_000_021))
        let b = trigger.nextTick(after: Date(timeIntervalSince1970: 1_000_079))
        #expect(a == b)
        #expect(a == Date(timeIntervalSince1970: 1_000_080))
        #expect(trigger.nextTick(after: Date(timeIntervalSince1970: 1_000_020)) == Date(timeIntervalSince1970: 1_000_080))
    }
}
