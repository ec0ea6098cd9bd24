import Foundation

/// Job identifiers as Baton stores them.
public enum Slug {
    /// Turns a job id into its slug: lower-case ASCII letters, digits and single dashes.
    ///
    /// `"New User: Welcome!"` becomes `"new-user-welcome"`. Letters with diacritics lose them
    /// (`"Café"` → `"cafe"`); anything else separates words.
    /// - Throws: `ValidationError` when nothing usable remains (`""`, `"!!!"`) or the slug is
    ///   longer than ``maximumLength``.
    public static func make(_ id: String) throws(ValidationError) -> String {
        var result = ""
        var pendingDash = false
        for scalar in id.decomposedStringWithCompatibilityMapping.unicodeScalars {
            if scalar.properties.generalCategory == .nonspacingMark { continue }
            if scalar.isASCII, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                if pendingDash, !result.isEmpty { result.append("-") }
                pendingDash = false
                result.unicodeScalars.append(contentsOf: String(scalar).lowercased().unicodeScalars)
            } else {
                pendingDash = true
            }
        }
        guard !result.isEmpty else {
            throw ValidationError(path: "$.id", message: "job id '\(id)' has no letters or digits to make a slug from")
        }
        guard result.count <= maximumLength else {
            throw ValidationError(path: "$.id", message: "job id slug '\(result)' is longer than \(maximumLength) characters")
        }
        return result
    }

    /// The longest slug accepted; slugs become part of Kafka topic names (limit 249).
    public static let maximumLength = 200

    /// Whether `text` is already a valid slug.
    public static func isValid(_ text: String) -> Bool {
        (try? make(text)) == text
    }
}
