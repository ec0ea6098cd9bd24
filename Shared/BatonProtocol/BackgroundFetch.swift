import Foundation

/// An HTTP request the task-result service performs for a run (`io.backgroundFetch`).
public struct BackgroundFetchRequest: Codable, Sendable, Hashable {
    public var url: String
    public var method: String
    public var headers: [String: String]
    public var body: String?
    /// Retry rules by response status: keys are `"429"`, `"500-599"` or `"5xx"`; `"network"`
    /// applies to connection failures. The first rule that matches decides.
    public var retry: [String: RetryPolicy]
    /// URL, headers and body sealed with a fetch-secrets key (see ``FetchSecrets``): then `url`
    /// holds only the redacted URL, and `headers` and `body` are empty.
    public var sealed: SealedFetchSecrets?

    public init(url: String, method: String = "GET", headers: [String: String] = [:], body: String? = nil, retry: [String: RetryPolicy] = [:]) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.retry = retry
    }

    /// `METHOD scheme://host/path`, the name the runs API shows for the task: without user
    /// information, query or fragment, which may carry credentials (`?token=…`).
    public var displayName: String {
        guard var components = URLComponents(string: url) else { return "\(method) (unparsable URL)" }
        let hadQuery = components.query != nil
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return "\(method) \(components.string ?? "(unparsable URL)")\(hadQuery ? "?…" : "")"
    }

    /// Checks the URL, the method and the retry rules.
    /// - Throws: `ValidationError` naming the offending part.
    public func validate() throws(ValidationError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", components.host?.isEmpty == false
        else {
            throw ValidationError(path: "url", message: "'\(url)' is not an http(s) URL")
        }
        let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        guard methods.contains(method.uppercased()) else {
            throw ValidationError(path: "method", message: "'\(method)' is not one of \(methods.joined(separator: ", "))")
        }
        for (pattern, policy) in retry {
            guard pattern == "network" || Self.statusRange(pattern) != nil else {
                throw ValidationError(path: "retry.\(pattern)", message: "'\(pattern)' is not a status (429), a range (500-599), a class (5xx) or 'network'")
            }
            do {
                try policy.validate()
            } catch {
                throw ValidationError(path: "retry.\(pattern).\(error.path)", message: error.message)
            }
        }
    }

    /// The policy for a response with `status` (`nil` status: a connection failure), if any.
    public func retryPolicy(forStatus status: Int?) -> RetryPolicy? {
        guard let status else { return retry["network"] }
        for (pattern, policy) in retry.sorted(by: { $0.key < $1.key }) where pattern != "network" {
            if let range = Self.statusRange(pattern), range.contains(status) { return policy }
        }
        return nil
    }

    /// `"429"` → 429...429, `"500-599"` → 500...599, `"5xx"` → 500...599.
    static func statusRange(_ pattern: String) -> ClosedRange<Int>? {
        if pattern.count == 3, pattern.hasSuffix("xx"), let first = Int(pattern.prefix(1)), (1...5).contains(first) {
            return (first * 100)...(first * 100 + 99)
        }
        let bounds = pattern.split(separator: "-").map { Int($0) }
        if bounds.count == 1, let single = bounds[0], (100...599).contains(single) { return single...single }
        if bounds.count == 2, let low = bounds[0], let high = bounds[1], (100...599).contains(low), low <= high, high <= 599 { return low...high }
        return nil
    }
}

/// The stored result of a background fetch: the task's output.
public struct BackgroundFetchResponse: Codable, Sendable, Hashable {
    /// HTTP status; 0 when no response came (see `error`).
    public var status: Int
    public var headers: [String: String]
    public var body: String
    /// Why no response came, when `status` is 0.
    public var error: String?
    /// Requests made, retries included.
    public var attempts: Int

    public init(status: Int, headers: [String: String], body: String, error: String? = nil, attempts: Int) {
        self.status = status
        self.headers = headers
        self.body = body
        self.error = error
        self.attempts = attempts
    }

    /// Whether the status is 2xx.
    public var isSuccess: Bool { (200...299).contains(status) }
}
