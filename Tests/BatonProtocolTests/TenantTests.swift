import BatonProtocol
import Foundation
import Testing

@Suite("Tenants and API keys")
struct TenantTests {
    @Test("client-chosen ids are scoped per tenant; the default tenant keeps them as they are")
    func scoping() throws {
        let prod = try Tenant(project: "acme", environment: "prod")
        #expect(prod.scoped("evt_1") == "acme/prod/evt_1")
        #expect(Tenant.default.scoped("evt_1") == "evt_1")
        #expect(prod.scoped("evt_1") != (try Tenant(project: "acme", environment: "dev")).scoped("evt_1"))
    }

    @Test("deduplication keys never collide between environments of a project")
    func deduplicationScopes() throws {
        let prod = try Tenant(project: "acme", environment: "prod")
        let dev = try Tenant(project: "acme", environment: "dev")
        for scope in [DeduplicationScope.project, .job, .organization] {
            let inProd = try scope.scopedKey("welcome-u1", organization: prod.deduplicationOrganization("org"), project: "acme", jobSlug: "welcome")
            let inDev = try scope.scopedKey("welcome-u1", organization: dev.deduplicationOrganization("org"), project: "acme", jobSlug: "welcome")
            #expect(inProd != inDev, "\(scope.rawValue): \(inProd)")
        }
        #expect(try DeduplicationScope.project.scopedKey("k", organization: Tenant.default.deduplicationOrganization("org"), project: "p", jobSlug: "j") == "proj:org/p:k")
    }

    @Test("tenants and key files are validated and name what is wrong")
    func validation() throws {
        #expect(throws: ValidationError.self) { try Tenant(project: "Acme Inc", environment: "prod") }
        #expect(throws: ValidationError.self) { try Tenant(project: "acme", environment: "") }
        let key = APIKey.generate(environment: "prod")
        #expect(key.hasPrefix("bk_prod_") && key.count == 8 + 64)
        #expect(APIKey.generate(environment: "prod") != key)
        #expect(APIKey.hash(key).count == 64 && APIKey.hash(key) != key)
        let good = #"{"keys":[{"id":"a","project":"acme","environment":"prod","sha256":"\#(APIKey.hash(key))"}]}"#
        #expect(try APIKey.File.decode(from: Array(good.utf8)).keys.count == 1)
        let plain = #"{"keys":[{"id":"a","project":"acme","environment":"prod","sha256":"\#(key)"}]}"#
        do {
            _ = try APIKey.File.decode(from: Array(plain.utf8))
            Issue.record("a key stored in clear was accepted")
        } catch {
            #expect(error.path == "$.keys[0].sha256")
        }
        let badProject = #"{"keys":[{"id":"a","project":"Acme","environment":"prod","sha256":"\#(APIKey.hash(key))"}]}"#
        do {
            _ = try APIKey.File.decode(from: Array(badProject.utf8))
            Issue.record("a project that is not a slug was accepted")
        } catch {
            #expect(error.path == "$.keys[0].project")
        }
    }

    @Test("events and jobs match only within their tenant")
    func matching() throws {
        let prod = try Tenant(project: "acme", environment: "prod")
        let job = try JobRegistration(id: "welcome", name: "Welcome", version: "1.0.0", trigger: .event(name: "user.created"), tenant: prod)
        #expect(job.matches(EventEnvelope(name: "user.created", tenant: prod)))
        #expect(!job.matches(EventEnvelope(name: "user.created")))
        #expect(!job.matches(EventEnvelope(name: "user.created", tenant: try Tenant(project: "acme", environment: "dev"))))
        #expect(job.recordKey == "acme/prod/welcome")
        let decoded = try JobRegistration.decode(from: try BatonJSON.encoder.encode(job))
        #expect(decoded.tenant == prod)
    }
}
