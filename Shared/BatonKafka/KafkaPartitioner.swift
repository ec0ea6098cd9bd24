import CRdKafka

/// Where Baton's producers put a keyed record: librdkafka's `consistent_random` partitioner
/// (CRC32 of the key, modulo the partition count), which Baton's producers set explicitly.
///
/// Consumers that must know which partition holds a key (the task-result service's read
/// barrier waits for the partition of a run id only) ask here, so both sides agree.
public enum KafkaPartitioner {
    /// The name of the partitioner, as the `partitioner` librdkafka property.
    public static let name = "consistent_random"

    /// The partition of `key` in a topic of `partitionCount` partitions.
    public static func partition(of key: some Collection<UInt8>, partitionCount: Int) -> Int32 {
        precondition(partitionCount > 0, "a topic has at least one partition")
        let bytes = Array(key)
        return bytes.withUnsafeBytes { buffer in
            rd_kafka_msg_partitioner_consistent(nil, buffer.baseAddress, buffer.count, Int32(partitionCount), nil, nil)
        }
    }
}
