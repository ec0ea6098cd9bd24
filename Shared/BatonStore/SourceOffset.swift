/// Where a consumed record came from: stored with the state change it causes, in one
/// transaction, so a store knows how far it has read each partition.
public struct SourceOffset: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}
