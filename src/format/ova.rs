//! OVA for VMware: a tar of `disk.ovf` (the appliance: 2 vCPUs, 2 GiB, LSI Logic SCSI
//! disk, VMXNET3 on "VM Network", a `talos.config` guestinfo property), `disk.mf` (SHA-256
//! of the other two) and `disk.vmdk` (streamOptimized), in that order.

use super::tar::{self, Member};
use super::{FormatError, Segment, SparseImage, vmdk};
use sha2::{Digest, Sha256};

fn sha256(image: &SparseImage) -> String {
    let mut hasher = Sha256::new();
    let zeros = [0u8; 4096];
    for segment in image.segments() {
        match segment {
            Segment::Data { bytes, .. } => hasher.update(bytes),
            Segment::Zero(mut len) => {
                while len > 0 {
                    let step = len.min(zeros.len() as u64) as usize;
                    hasher.update(&zeros[..step]);
                    len -= step as u64;
                }
            }
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The appliance description for a disk of `disk_size` bytes stored in a `vmdk_size`-byte file.
pub fn ovf(disk_size: u64, vmdk_size: u64) -> String {
    let capacity = disk_size >> 20;
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:id="file1" ovf:href="disk.vmdk" ovf:size="{vmdk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte * 2^20" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>VM Network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="talos">
    <Info>Talos Linux</Info>
    <Name>talos</Name>
    <ProductSection ovf:required="false">
      <Info>Talos Linux appliance</Info>
      <Property ovf:key="talos.config" ovf:type="string" ovf:userConfigurable="true" ovf:value="">
        <Label>Talos config data</Label>
        <Description>Inline Talos machine configuration</Description>
      </Property>
    </ProductSection>
    <OperatingSystemSection ovf:id="101" vmw:osType="other3xLinux64Guest">
      <Info>Guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection ovf:transport="com.vmware.guestInfo">
      <Info>Virtual hardware</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>talos</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>2 virtual CPUs</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>2048 MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>2048</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:ElementName>scsiController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>disk0</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:ElementName>ethernet0</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

fn text_member(name: &str, text: String) -> Result<Member, FormatError> {
    let mut content = SparseImage::new(text.len() as u64);
    content.put(0, text.into_bytes())?;
    Ok(Member {
        name: name.into(),
        mode: 0o644,
        content,
        sparse: false,
    })
}

/// `image` as an OVA; `mtime` dates the archive entries.
pub fn ova(image: &SparseImage, cid: u32, mtime: u32) -> Result<SparseImage, FormatError> {
    let vmdk = vmdk::stream_optimized(image, cid)?;
    let descriptor = ovf(image.size(), vmdk.size());
    let mut ovf_image = SparseImage::new(descriptor.len() as u64);
    ovf_image.put(0, descriptor.clone().into_bytes())?;
    let manifest = format!(
        "SHA256(disk.vmdk)= {}\nSHA256(disk.ovf)= {}\n",
        sha256(&vmdk),
        sha256(&ovf_image)
    );
    tar::archive(
        vec![
            text_member("disk.ovf", descriptor)?,
            text_member("disk.mf", manifest)?,
            Member {
                name: "disk.vmdk".into(),
                mode: 0o644,
                content: vmdk,
                sparse: false,
            },
        ],
        mtime,
    )
}
