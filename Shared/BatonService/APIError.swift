import BatonProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error answered to an HTTP client as `{"error": {"code", "message", "path"}}`.
public struct APIError: HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var path: String?

    public init(status: HTTPResponse.Status, code: String, message: String, path: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.path = path
    }

    /// 400 for malformed JSON, 422 for a well-formed document with an invalid field.
    public init(_ error: ValidationError) {
        self.init(status: error.code == "malformed_json" ? .badRequest : .unprocessableContent,
                  code: error.code, message: error.message, path: error.path)
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try BatonJSON.encoder.encode(APIErrorBody(error: .init(code: code, message: message, path: path)))
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Encodes `value` as a JSON response with `status`.
public func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let data = try BatonJSON.encoder.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// The JSON body of an error response.
public struct APIErrorBody: Codable, Sendable, Hashable {
    public struct Detail: Codable, Sendable, Hashable {
        public var code: String
        public var message: String
        public var path: String?
        public init(code: String, message: String, path: String?) {
            self.code = code
            self.message = message
            self.path = path
        }
    }
    public var error: Detail
}
