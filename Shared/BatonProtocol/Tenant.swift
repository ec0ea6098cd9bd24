/// The project and environment (`dev`, `prod`, …) that events, jobs and runs belong to.
///
/// An API key belongs to exactly one tenant; everything it sends is stamped with that tenant,
/// and it sees only that tenant's jobs, events and runs. Without API keys (the embedded, local
/// profile) everything belongs to ``default``.
public struct Tenant: Codable, Sendable, Hashable, CustomStringConvertible {
    /// The project slug.
    public var project: String
    /// The environment slug.
    public var environment: String

    /// The tenant of everything sent without an API key.
    public static let `default` = Tenant(unchecked: "default", environment: "default")

    /// A tenant from two slugs.
    /// - Throws: `ValidationError` naming the part that is not a slug.
    public init(project: String, environment: String) throws(ValidationError) {
        guard Slug.isValid(project) else {
            throw ValidationError(path: "project", message: "'\(project)' is not a project slug (lower-case letters, digits, single dashes)")
        }
        guard Slug.isValid(environment) else {
            throw ValidationError(path: "environment", message: "'\(environment)' is not an environment slug (lower-case letters, digits, single dashes)")
        }
        self.project = project
        self.environment = environment
    }

    init(unchecked project: String, environment: String) {
        self.project = project
        self.environment = environment
    }

    /// The tenant of optional `project` / `environment` fields: absent parts are `default`.
    public static func of(project: String?, environment: String?) -> Tenant {
        Tenant(unchecked: project ?? Tenant.default.project, environment: environment ?? Tenant.default.environment)
    }

    /// `project/environment`.
    public var description: String { "\(project)/\(environment)" }

    /// An identifier chosen by a client (an event id), made unique across tenants: unchanged for
    /// the default tenant, `project/environment/id` otherwise (slugs hold no `/`).
    public func scoped(_ id: String) -> String {
        self == .default ? id : "\(project)/\(environment)/\(id)"
    }

    /// The organization part of deduplication keys: `organization` for the default environment,
    /// `organization@environment` otherwise, so that no key is shared between environments (a
    /// welcome e-mail sent from `dev` must not stop the one from `prod`).
    public func deduplicationOrganization(_ organization: String) -> String {
        environment == Tenant.default.environment ? organization : "\(organization)@\(environment)"
    }

    /// Checks optional `project` / `environment` fields of a document at `path`.
    static func validate(project: String?, environment: String?, path: String) throws(ValidationError) {
        if let project, !Slug.isValid(project) {
            throw ValidationError(path: "\(path).project", message: "'\(project)' is not a project slug")
        }
        if let environment, !Slug.isValid(environment) {
            throw ValidationError(path: "\(path).environment", message: "'\(environment)' is not an environment slug")
        }
    }
}

/// A document that belongs to a tenant through optional `project` and `environment` fields
/// (absent: `default`, so documents of the default tenant carry neither).
public protocol TenantOwned {
    var project: String? { get set }
    var environment: String? { get set }
}

extension TenantOwned {
    /// The tenant the document belongs to.
    public var tenant: Tenant {
        get { Tenant.of(project: project, environment: environment) }
        set {
            project = newValue == .default ? nil : newValue.project
            environment = newValue == .default ? nil : newValue.environment
        }
    }
}
