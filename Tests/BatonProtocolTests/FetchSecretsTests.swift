import BatonProtocol
import Foundation
import Testing

@Suite("Fetch secrets: background-fetch requests sealed with AES-GCM")
struct FetchSecretsTests {
    static func key() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }
    let request = BackgroundFetchRequest(url: "https://user:pw@api.example.com/v1/items?token=t0k3n#frag", method: "POST",
                                         headers: ["Authorization": "Bearer s3cret"], body: #"{"password":"hunter2"}"#,
                                         retry: ["5xx": RetryPolicy(limit: 3)])

    @Test("sealing hides URL credentials, headers and body; opening gives the request back")
    func roundTrip() throws {
        let secrets = try FetchSecrets(base64Keys: [Self.key()])
        let sealed = try secrets.seal(request, context: "r/t")
        let json = String(decoding: try JSONEncoder().encode(sealed), as: UTF8.self)
        for secret in ["t0k3n", "s3cret", "hunter2", "pw@", "frag"] { #expect(!json.contains(secret), "\(secret) in \(json)") }
        #expect(sealed.url == "https://api.example.com/v1/items")
        #expect(sealed.method == "POST" && sealed.retry == request.retry, "method and retry rules stay readable")
        #expect(sealed.sealed?.keyID == secrets.sealingKeyID)
        #expect(try secrets.open(sealed, context: "r/t") == request)
        #expect(try secrets.open(request, context: "r/t") == request, "a request in clear opens as itself")
        #expect(try secrets.seal(sealed, context: "r/t") == sealed, "sealing twice changes nothing")
    }

    @Test("the wrong key, an altered box and a bad key setting are errors that say what to do")
    func errors() throws {
        let secrets = try FetchSecrets(base64Keys: [Self.key()])
        let sealed = try secrets.seal(request, context: "r/t")
        let other = try FetchSecrets(base64Keys: [Self.key()])
        #expect { try other.open(sealed, context: "r/t") } throws: { error in
            (error as? FetchSecretsError)?.isMissingKey == true && "\(error)".contains(sealed.sealed!.keyID) && "\(error)".contains("FETCH_SECRETS_KEYS")
        }
        // Bound to its task and to what stays in clear.
        #expect { try secrets.open(sealed, context: "r/other-task") } throws: { error in "\(error)".contains("another task") }
        var delete = sealed
        delete.method = "DELETE"
        #expect(throws: FetchSecretsError.self, "a GET cannot be turned into a DELETE") { try secrets.open(delete, context: "r/t") }
        #expect(try FetchSecrets(base64Keys: [Self.key() + "\n"]).sealingKeyID.count == 8, "a key read from a file with its newline")
        var altered = sealed
        var bytes = Array(Data(base64Encoded: sealed.sealed!.box)!)
        bytes[bytes.count / 2] ^= 0x01
        altered.sealed!.box = Data(bytes).base64EncodedString()
        #expect { try secrets.open(altered, context: "r/t") } throws: { error in "\(error)".contains("altered") }
        #expect(throws: ValidationError.self) { try FetchSecrets(base64Keys: ["c2hvcnQ="]) }
        #expect(throws: ValidationError.self) { try FetchSecrets(base64Keys: []) }
        #expect(try FetchSecrets.parse("") == nil)
    }

    @Test("rotation: the first key seals, every key opens")
    func rotation() throws {
        let old = Self.key(), new = Self.key()
        let sealedWithOld = try FetchSecrets(base64Keys: [old]).seal(request, context: "r/t")
        let rotated = try FetchSecrets(base64Keys: [new, old])
        #expect(try rotated.open(sealedWithOld, context: "r/t") == request)
        let sealedWithNew = try rotated.seal(request, context: "r/t")
        #expect(sealedWithNew.sealed?.keyID != sealedWithOld.sealed?.keyID)
        #expect(throws: FetchSecretsError.self) { try FetchSecrets(base64Keys: [old]).open(sealedWithNew, context: "r/t") }
    }

    @Test("requests that look like they carry credentials are recognised")
    func credentials() {
        #expect(request.carriesCredentials)
        #expect(BackgroundFetchRequest(url: "https://a.example/x?q=1").carriesCredentials)
        #expect(BackgroundFetchRequest(url: "https://a.example/x", headers: ["X-Api-Key": "k"]).carriesCredentials)
        #expect(!BackgroundFetchRequest(url: "https://a.example/x", headers: ["Accept": "application/json"]).carriesCredentials)
    }
}
